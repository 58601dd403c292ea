// One job: its spec, every attempt (times, exit, reason, usage), the
// output of each attempt with stdout and stderr told apart (live for the
// current one, from the output's Server-Sent Events, resumed where it left
// off after a dropped connection), the jobs it waits for as links, and
// cancel, retry and delete (each confirmed) for a caller that may. A
// button copies the `jobq submit` command that makes the same job.

import { api, follow, fromBase64 } from "./api.js";
import { badge, commandLine, h, quote, replace, took, when } from "./dom.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

/** The `jobq submit` line that makes a job like this one. */
export function cliCommand(job) {
  const words = ["jobq", "submit"];
  const flag = (name, value) => { if (value !== null && value !== undefined && value !== "") words.push(name, quote(String(value))); };
  if (job.queue && job.queue !== "default") flag("--queue", job.queue);
  flag("--name", job.name);
  if (job.priority) flag("--priority", job.priority);
  flag("--timeout", job.timeout);
  if (job.retries) flag("--retries", job.retries);
  if (job.retries && job.backoff) flag("--backoff", job.backoff);
  flag("--cwd", job.cwd);
  for (const [k, v] of Object.entries(job.env || {})) flag("--env", `${k}=${v}`);
  for (const [k, v] of Object.entries(job.labels || {})) flag("--label", `${k}=${v}`);
  for (const a of job.after || []) flag("--after", a);
  if (job.shell !== undefined && job.shell !== null) flag("--shell", job.shell);
  else words.push("--", ...(job.command || []).map(quote));
  return words.join(" ");
}

function spec(job) {
  const item = (k, v) => [h("dt", {}, k), h("dd", {}, v)];
  return h("dl", { class: "spec" },
    item("id", job.id),
    item(job.shell !== undefined && job.shell !== null ? "shell" : "command", h("code", {}, commandLine(job))),
    item("name", job.name || "—"),
    item("queue", job.queue),
    item("priority", String(job.priority)),
    item("owner", job.owner),
    item("runs as", `${job.user} (uid ${job.uid})`),
    item("cwd", job.cwd || "the daemon's work dir"),
    item("timeout", job.timeout || "none"),
    item("retries", `${job.retries}${job.retries ? `, backoff ${job.backoff}` : ""}`),
    item("env", Object.keys(job.env || {}).length ? Object.entries(job.env).map(([k, v]) => h("div", {}, `${k}=${v}`)) : "—"),
    item("labels", Object.keys(job.labels || {}).length ? Object.entries(job.labels).map(([k, v]) => h("div", {}, `${k}: ${v}`)) : "—"),
    item("waits for", job.after && job.after.length ? job.after.map((a) => h("div", {}, h("a", { href: `#/jobs/${encodeURIComponent(a)}` }, a))) : "—"),
    item("schedule", job.schedule ? h("a", { href: "#/schedules" }, job.schedule) : "—"),
    item("submitted", when(job.created_at)),
    job.error ? item("error", h("span", { class: "field-error" }, job.error)) : null);
}

function attempts(job) {
  if (!job.attempts || !job.attempts.length) return h("p", { class: "muted" }, "No attempt yet.");
  const usage = (u) => u ? `${(u.cpu_user_s + u.cpu_system_s).toFixed(3)} s CPU, ${(u.max_rss_bytes / 1048576).toFixed(1)} MiB` : "—";
  return h("div", { class: "scroll" }, h("table", { class: "attempts" },
    h("thead", {}, h("tr", {}, ["Attempt", "Started", "Took", "Exit", "Signal", "Reason", "Usage", "Output"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, job.attempts.map((a) => h("tr", { "data-attempt": a.attempt },
      h("td", {}, String(a.attempt)),
      h("td", {}, when(a.started_at)),
      h("td", {}, a.finished_at ? took(a.started_at, a.finished_at) : "running"),
      h("td", {}, a.exit_code === null || a.exit_code === undefined ? "—" : String(a.exit_code)),
      h("td", {}, a.signal === null || a.signal === undefined ? "—" : String(a.signal)),
      h("td", {}, a.reason || "—"),
      h("td", {}, usage(a.usage)),
      h("td", {}, a.output_bytes === null || a.output_bytes === undefined ? "—" : `${a.output_bytes} B`))))));
}

export function render(root, ctx, id) {
  const abort = new AbortController();
  let job = null;
  let outputAbort = null;
  let shownAttempt = null;
  const title = h("h2", {}, `Job ${id}`);
  const head = h("div", { class: "actions" });
  const specBox = h("section", { class: "card", "aria-label": "Spec" });
  const attemptsBox = h("section", { class: "card", "aria-label": "Attempts" });
  const picker = h("div", { class: "actions", role: "group", "aria-label": "Output of attempt" });
  const live = h("span", { class: "muted", id: "output-state", "aria-live": "polite" });
  const pre = h("pre", { class: "output", id: "output", tabindex: "0", "aria-label": "Output" });
  replace(root, title, head, h("h3", {}, "Spec"), specBox, h("h3", {}, "Attempts"), attemptsBox,
    h("h3", {}, "Output"), picker, live, pre);

  const decoder = { stdout: new TextDecoder(), stderr: new TextDecoder() };
  const showOutput = (attempt) => {
    if (outputAbort) outputAbort.abort();
    outputAbort = new AbortController();
    shownAttempt = attempt;
    decoder.stdout = new TextDecoder();
    decoder.stderr = new TextDecoder();
    replace(pre);
    for (const b of picker.querySelectorAll("button")) b.setAttribute("aria-pressed", String(Number(b.dataset.attempt) === attempt));
    const signal = outputAbort.signal;
    follow(`/v1/jobs/${encodeURIComponent(job.id)}/output?attempt=${attempt}`, {
      signal,
      onState: (s) => replace(live, s === "live" ? "" : "connection lost, reconnecting…"),
      onEvent: (ev) => {
        if (ev.event === "attempt") {
          // The stream goes on into the next attempt: that one has its own view.
          if (JSON.parse(ev.data).attempt !== attempt) outputAbort.abort();
          return;
        }
        if (ev.event === "stdout" || ev.event === "stderr") {
          const text = decoder[ev.event].decode(fromBase64(ev.data), { stream: true });
          const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
          pre.append(ev.event === "stderr" ? h("span", { class: "stderr" }, text) : document.createTextNode(text));
          if (atBottom) pre.scrollTop = pre.scrollHeight;
        }
        if (ev.event === "end") replace(live, "");
      },
    }).catch((e) => replace(live, e.message));
  };

  const draw = () => {
    replace(title, `Job #${job.number} `, badge(job.state), job.name ? ` ${job.name}` : "");
    document.title = `#${job.number} ${job.state} · jobq`;
    const mine = ctx.mayActOn(job.owner);
    const act = (label, method, path, after, cls) => h("button", { class: cls || "secondary",
      onclick: async () => {
        if (!confirm(`${label} job #${job.number}?`)) return;
        try {
          const res = await api(method, path);
          ctx.say(`${label}: job #${job.number}.`);
          after(res);
        } catch (e) {
          ctx.say(e.message, "error");
        }
      } }, label);
    const path = `/v1/jobs/${encodeURIComponent(job.id)}`;
    replace(head,
      mine && !TERMINAL.has(job.state) ? act("Cancel", "POST", `${path}/cancel`, (j) => { job = j; draw(); }, "danger") : null,
      mine && TERMINAL.has(job.state) ? act("Retry", "POST", `${path}/retry`, (j) => { job = j; draw(); }) : null,
      mine && TERMINAL.has(job.state) ? act("Delete", "DELETE", path, () => { location.hash = "#/jobs"; }, "danger") : null,
      h("button", { class: "secondary", onclick: async () => {
        const line = cliCommand(job);
        try {
          await navigator.clipboard.writeText(line);
          ctx.say("Copied: " + line);
        } catch {
          ctx.say(line);
        }
      } }, "Copy as jobq command"));
    replace(specBox, spec(job));
    replace(attemptsBox, attempts(job));
    const count = job.attempt || 0;
    replace(picker, count === 0 ? h("span", { class: "muted" }, "No output before the first attempt.")
      : Array.from({ length: count }, (_, i) => i + 1).map((n) =>
        h("button", { class: "secondary", "data-attempt": n, "aria-pressed": String(n === shownAttempt),
          onclick: () => showOutput(n) }, `Attempt ${n}`)));
    if (count > 0 && (shownAttempt === null || (shownAttempt < count && !TERMINAL.has(job.state)))) showOutput(count);
  };

  const reload = async () => {
    try {
      job = await api("GET", `/v1/jobs/${encodeURIComponent(id)}`);
      draw();
    } catch (e) {
      replace(title, `Job ${id}`);
      replace(head, h("p", { class: "field-error", role: "alert" }, e.message));
    }
  };
  reload().then(() => {
    if (!job) return;
    follow(`/v1/events?job=${encodeURIComponent(job.id)}`, {
      signal: abort.signal,
      onEvent: (ev) => { if (ev.event === "job") reload(); },
    }).catch(() => {});
  });
  return () => { abort.abort(); if (outputAbort) outputAbort.abort(); };
}
