// Schedules: each with its cron line and time zone, the next and the last
// fire (and how that job went), and pause/resume and run-now for a caller
// that may manage it.

import { api } from "./api.js";
import { badge, commandLine, h, replace, when } from "./dom.js";

export function render(root, ctx) {
  let gone = false;
  const box = h("div", {}, h("p", {}, "Loading schedules…"));
  replace(root, h("h2", {}, "Schedules"), box);
  const load = async () => {
    try {
      const { schedules } = await api("GET", "/v1/schedules");
      if (gone) return;
      if (!schedules.length) {
        replace(box, h("p", {}, "No schedules. Add one with ", h("code", {}, "jobq schedule add"), "."));
        return;
      }
      const act = (s, label, method, path, body) => h("button", { class: "secondary",
        "aria-label": `${label} schedule ${s.name}`,
        onclick: async () => {
          try {
            const res = await api(method, path, body);
            ctx.say(res && res.number ? `${s.name}: started job #${res.number}.` : `${s.name}: ${label.toLowerCase()}d.`);
          } catch (e) {
            ctx.say(e.message, "error");
          }
          load();
        } }, label);
      replace(box, h("table", { class: "jobs schedules" },
        h("thead", {}, h("tr", {}, ["Name", "When", "Command", "Next", "Last", "Actions"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, schedules.map((s) => {
          const path = `/v1/schedules/${encodeURIComponent(s.name)}`;
          const mine = ctx.mayActOn(s.owner);
          return h("tr", { "data-name": s.name },
            h("td", { "data-label": "Name" }, s.name, s.paused ? h("span", { class: "badge state-cancelled" }, " ⏸ paused") : null),
            h("td", { "data-label": "When" }, h("code", {}, s.cron), ` (${s.timezone})`),
            h("td", { "data-label": "Command", class: "cmd" }, commandLine(s.job)),
            h("td", { "data-label": "Next" }, s.paused ? "paused" : when(s.next_run_at)),
            h("td", { "data-label": "Last" }, s.last_job
              ? [h("a", { href: `#/jobs/${s.last_job}` }, `#${s.last_job_number}`), " ", s.last_job_state ? badge(s.last_job_state) : null, " ", when(s.last_run_at)]
              : "never", s.skipped ? h("span", { class: "muted" }, ` · ${s.skipped} skipped`) : null),
            h("td", { "data-label": "Actions" }, mine ? [
              s.paused ? act(s, "Resume", "PATCH", path, { paused: false }) : act(s, "Pause", "PATCH", path, { paused: true }),
              act(s, "Run now", "POST", `${path}/run`),
            ] : h("span", { class: "muted" }, "—")));
        }))));
    } catch (e) {
      replace(box, h("p", { class: "field-error", role: "alert" }, e.message));
    }
  };
  load();
  const timer = setInterval(load, 5000);
  return () => { gone = true; clearInterval(timer); };
}
