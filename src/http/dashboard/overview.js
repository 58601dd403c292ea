// The overview: every queue with its limit, paused flag and counts by
// state, and two live charts of the last five minutes: jobs finished per
// second (from GET /v1/events) and jobs waiting to run (from polling GET
// /v1/queues every two seconds). The charts are SVG drawn here: two lines
// do not need a library.

import { api, follow } from "./api.js";
import { badge, h, replace } from "./dom.js";

const STATES = ["waiting", "scheduled", "queued", "running", "succeeded", "failed", "cancelled"];
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const WINDOW_S = 300;
const POLL_MS = 2000;

// Kept across visits to the overview, so the charts do not restart empty.
const history = { finished: [], depth: [] };

function trim(now) {
  for (const series of [history.finished, history.depth]) {
    while (series.length && series[0][0] < now - WINDOW_S * 1000) series.shift();
  }
}

/** Finished jobs per second over the window, in 10 s buckets. */
function rates(now) {
  const buckets = new Array(WINDOW_S / 10).fill(0);
  for (const [t] of history.finished) {
    const i = Math.floor((t - (now - WINDOW_S * 1000)) / 10000);
    if (i >= 0 && i < buckets.length) buckets[i] += 1;
  }
  return buckets.map((n, i) => [now - WINDOW_S * 1000 + (i + 1) * 10000, n / 10]);
}

function chart(label, cls, points, now) {
  const W = 600, H = 100;
  const max = Math.max(1, ...points.map((p) => p[1]));
  const x = (t) => ((t - (now - WINDOW_S * 1000)) / (WINDOW_S * 1000)) * W;
  const y = (v) => H - 2 - (v / max) * (H - 6);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("class", "chart");
  svg.setAttribute("aria-hidden", "true");
  if (points.length > 1) {
    const path = document.createElementNS(ns, "polyline");
    path.setAttribute("class", `line ${cls}`);
    path.setAttribute("vector-effect", "non-scaling-stroke");
    path.setAttribute("points", points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" "));
    svg.append(path);
  }
  const last = points.length ? points[points.length - 1][1] : 0;
  const n = (v) => String(Number(v.toFixed(2)));
  return h("figure", { class: "chart" },
    h("figcaption", {}, h("span", { class: cls }, label), ` — now ${n(last)}, highest ${n(max)}`),
    svg,
    h("div", { class: "axis muted" }, h("span", {}, "5 min ago"), h("span", {}, "now")));
}

function queueCard(q, ctx, refresh) {
  const waiting = (q.counts.queued || 0);
  const toggle = ctx.isAdmin
    ? h("button", { class: "secondary", "data-queue": q.name,
      "aria-label": `${q.paused ? "Resume" : "Pause"} queue ${q.name}`,
      onclick: async (e) => {
        e.target.disabled = true;
        try {
          await api("PATCH", `/v1/queues/${encodeURIComponent(q.name)}`, { paused: !q.paused });
          ctx.say(`Queue ${q.name} ${q.paused ? "resumed" : "paused"}.`);
        } catch (err) {
          ctx.say(err.message, "error");
        }
        refresh();
      } }, q.paused ? "Resume" : "Pause")
    : null;
  return h("section", { class: "card queue", "data-queue": q.name, "aria-label": `queue ${q.name}` },
    h("h3", {}, q.name, q.paused ? h("span", { class: "badge state-cancelled paused" }, " ⏸ paused") : null),
    h("p", { class: "muted" },
      `limit ${q.concurrency === null || q.concurrency === undefined ? "none (workers)" : q.concurrency}`,
      ` · ${q.running || 0} running · ${waiting} queued`),
    h("div", { class: "counts" }, STATES.map((s) =>
      h("a", { href: `#/jobs?queue=${encodeURIComponent(q.name)}&state=${s}`, class: "count" },
        badge(s), " ", String(q.counts[s] || 0)))),
    toggle);
}

export function render(root, ctx) {
  const abort = new AbortController();
  const queuesBox = h("div", { class: "grid", id: "queues" }, h("p", {}, "Loading queues…"));
  const charts = h("div", { id: "charts" });
  replace(root,
    h("h2", {}, "Queues"), queuesBox,
    h("h2", {}, "Last five minutes"),
    charts);

  const draw = () => {
    const now = Date.now();
    trim(now);
    replace(charts,
      chart("jobs finished per second", "done", rates(now), now),
      chart("jobs queued", "depth", history.depth, now));
  };
  let timer = null;
  const refresh = async () => {
    clearTimeout(timer);
    try {
      const { queues } = await api("GET", "/v1/queues");
      history.depth.push([Date.now(), queues.reduce((n, q) => n + (q.counts.queued || 0), 0)]);
      replace(queuesBox, queues.length ? queues.map((q) => queueCard(q, ctx, refresh)) : h("p", {}, "No queues yet: submit a job."));
      draw();
    } catch (e) {
      if (!abort.signal.aborted) ctx.say(e.message, "error");
    }
    if (!abort.signal.aborted) timer = setTimeout(refresh, POLL_MS);
  };
  refresh();
  follow("/v1/events", {
    signal: abort.signal,
    onEvent: (ev) => {
      if (ev.event !== "job") return;
      try {
        if (TERMINAL.has(JSON.parse(ev.data).state)) history.finished.push([Date.now()]);
      } catch { /* not a job event */ }
    },
  }).catch((e) => ctx.say(e.message, "error"));
  return () => { abort.abort(); clearTimeout(timer); };
}
