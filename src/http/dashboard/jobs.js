// The jobs list: filters by state, queue, owner, label and name (the API's
// own filters, so a page of a million jobs is one page read) and by text
// (within the loaded page: command and name), pages with the API's
// cursor, rows that change state live from GET /v1/events, and bulk
// cancel, retry or delete of the jobs the state/queue/owner filters match.
// The filters live in the location (#/jobs?state=failed&queue=x), so a
// filtered list can be bookmarked and shared.

import { api, follow } from "./api.js";
import { badge, commandLine, h, replace, when } from "./dom.js";

const STATES = ["waiting", "scheduled", "queued", "running", "succeeded", "failed", "cancelled"];
const PAGE = 50;

function row(job) {
  return h("tr", { "data-id": job.id, "data-state": job.state },
    h("td", { "data-label": "#" }, h("a", { href: `#/jobs/${job.id}` }, `#${job.number}`)),
    h("td", { "data-label": "State", class: "state" }, badge(job.state)),
    h("td", { "data-label": "Name" }, job.name || h("span", { class: "muted" }, "—")),
    h("td", { "data-label": "Command", class: "cmd" }, commandLine(job)),
    h("td", { "data-label": "Queue" }, job.queue),
    h("td", { "data-label": "Owner" }, job.owner),
    h("td", { "data-label": "Submitted" }, when(job.created_at)));
}

export function render(root, ctx, params) {
  const abort = new AbortController();
  const f = {
    state: params.getAll("state").flatMap((s) => s.split(",")).filter(Boolean),
    queue: params.get("queue") || "",
    owner: params.get("owner") || "",
    label: params.get("label") || "",
    name: params.get("name") || "",
    text: params.get("text") || "",
  };
  const input = (id, label, value, hint) => [
    h("label", { for: id }, label),
    h("input", { id, name: id, value, placeholder: hint || "" })];
  const stateBoxes = h("fieldset", { class: "states" }, h("legend", {}, "State"),
    STATES.map((s) => h("label", { class: "inline" },
      h("input", { type: "checkbox", name: "state", value: s, checked: f.state.includes(s) }), ` ${s}`)));
  const form = h("form", { class: "card", "aria-label": "Filters",
    onsubmit: (e) => {
      e.preventDefault();
      const q = new URLSearchParams();
      const states = [...form.querySelectorAll("input[name=state]:checked")].map((i) => i.value);
      if (states.length) q.set("state", states.join(","));
      for (const k of ["queue", "owner", "label", "name", "text"]) {
        const v = form.querySelector(`#f-${k}`).value.trim();
        if (v) q.set(k, v);
      }
      location.hash = `#/jobs${q.toString() ? "?" + q : ""}`;
    } },
    stateBoxes,
    h("div", { class: "filters" },
      h("div", {}, input("f-queue", "Queue", f.queue)),
      h("div", {}, input("f-owner", "Owner", f.owner, "token:ci")),
      h("div", {}, input("f-label", "Label", f.label, "key:value")),
      h("div", {}, input("f-name", "Name (whole)", f.name)),
      h("div", {}, input("f-text", "Text in this page", f.text, "command or name")),
      h("div", {}, h("button", { type: "submit" }, "Filter"))));
  const error = h("p", { class: "field-error", role: "alert" });
  const tbody = h("tbody");
  const table = h("table", { class: "jobs" },
    h("caption", { class: "muted" }, "Jobs, newest first"),
    h("thead", {}, h("tr", {}, ["#", "State", "Name", "Command", "Queue", "Owner", "Submitted"].map((c) => h("th", { scope: "col" }, c)))),
    tbody);
  const pager = h("div", { class: "actions" });
  const fresh = h("p", { class: "muted", "aria-live": "polite" });
  const bulk = h("div", { class: "actions needs-submit", "aria-label": "Bulk actions" });
  replace(root, h("h2", {}, "Jobs"), form, error, bulk, fresh, table, pager);

  const cursors = [null];
  let page = 0;
  const shown = new Map();

  const query = (cursor) => {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (f.state.length) q.set("state", f.state.join(","));
    for (const k of ["queue", "owner", "name"]) if (f[k]) q.set(k, f[k]);
    if (f.label) q.append("label", f.label);
    if (cursor) q.set("cursor", cursor);
    return q;
  };
  const load = async () => {
    replace(error);
    try {
      const res = await api("GET", `/v1/jobs?${query(cursors[page])}`);
      const text = f.text.toLowerCase();
      const jobs = res.jobs.filter((j) => !text || commandLine(j).toLowerCase().includes(text) || (j.name || "").toLowerCase().includes(text));
      shown.clear();
      for (const j of jobs) shown.set(j.id, j);
      replace(tbody, jobs.length ? jobs.map(row) : h("tr", {}, h("td", { colspan: 7 }, "No jobs match.")));
      cursors[page + 1] = res.next_cursor;
      replace(pager,
        h("button", { class: "secondary", disabled: page === 0, onclick: () => { page = 0; load(); } }, "First page"),
        h("button", { class: "secondary", disabled: page === 0, onclick: () => { page -= 1; load(); } }, "Previous page"),
        h("button", { class: "secondary", disabled: !res.next_cursor, onclick: () => { page += 1; load(); } }, "Next page"),
        h("span", { class: "muted" }, `page ${page + 1}`));
      replace(fresh);
    } catch (e) {
      const field = e.field ? ` (${e.field})` : "";
      replace(error, `${e.message}${field}`);
    }
  };

  if (ctx.canSubmit) {
    const body = () => {
      const b = {};
      if (f.state.length) b.state = f.state;
      if (f.queue) b.queue = f.queue;
      if (f.owner) b.owner = f.owner;
      return b;
    };
    const act = (label, path, cls) => h("button", { class: cls || "secondary",
      onclick: async () => {
        const what = [f.state.join("/") || "any state", f.queue && `queue ${f.queue}`, f.owner && `owner ${f.owner}`].filter(Boolean).join(", ");
        if (!confirm(`${label} every job that matches: ${what}?`)) return;
        try {
          const { count } = await api("POST", path, body());
          ctx.say(`${label}: ${count} job${count === 1 ? "" : "s"}.`);
          load();
        } catch (e) {
          ctx.say(e.message, "error");
        }
      } }, `${label} all matching`);
    replace(bulk, h("span", { class: "muted" }, "State, queue and owner filters:"),
      act("Cancel", "/v1/jobs/cancel"), act("Retry", "/v1/jobs/retry"), act("Delete", "/v1/jobs/clean", "danger"));
  }

  load();
  let added = 0;
  const q = f.queue ? `?queue=${encodeURIComponent(f.queue)}` : "";
  follow(`/v1/events${q}`, {
    signal: abort.signal,
    onEvent: (ev) => {
      if (ev.event !== "job") return;
      const e = JSON.parse(ev.data);
      const tr = tbody.querySelector(`tr[data-id="${CSS.escape(e.id)}"]`);
      if (tr) {
        tr.dataset.state = e.state;
        replace(tr.querySelector("td.state"), badge(e.state));
      } else if (e.state === "queued" || e.state === "waiting" || e.state === "scheduled") {
        if (page === 0 && !shown.has(e.id)) {
          added += 1;
          replace(fresh, `${added} new job${added === 1 ? "" : "s"} since this page was read. `,
            h("button", { class: "link", onclick: () => { added = 0; load(); } }, "Show them"));
        }
      }
    },
  }).catch((e) => ctx.say(e.message, "error"));
  return () => abort.abort();
}
