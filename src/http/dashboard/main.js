// The dashboard's shell: asks for a token when the daemon wants one,
// learns what that token may do (GET /v1/whoami), and shows one view at a
// time by the location's hash: #/ (overview), #/jobs, #/jobs/<id>,
// #/submit, #/schedules. Each view returns a function that stops whatever
// it keeps live (event streams, timers) when another view takes over.

import { api, ApiError, setToken, token } from "./api.js";
import { h, replace } from "./dom.js";
import * as overview from "./overview.js";
import * as jobs from "./jobs.js";
import * as job from "./job.js";
import * as submit from "./submit.js";
import * as schedules from "./schedules.js";

const view = document.getElementById("view");
const who = document.getElementById("who");
const status = document.getElementById("status");
let stop = () => {};
let ctx = null;

/** What the caller may do, for views to hide what it may not. */
function context(me) {
  const rank = { read: 0, submit: 1, admin: 2 }[me.role] ?? 0;
  return {
    me,
    canSubmit: rank >= 1,
    isAdmin: rank >= 2,
    /** True when the caller may cancel, retry or delete a job of `owner`. */
    mayActOn: (owner) => rank >= 2 || (rank >= 1 && owner === me.principal),
    say,
  };
}

/** A short message in the status line, read out by screen readers. */
function say(text, kind = "info") {
  status.className = `status ${kind}`;
  replace(status, text);
  if (text) setTimeout(() => { if (status.textContent === text) replace(status); }, 6000);
}

function askToken(message) {
  stop();
  stop = () => {};
  const input = h("input", { id: "token", type: "password", autocomplete: "off", required: true, "aria-describedby": "token-help" });
  const error = h("p", { class: "field-error", id: "token-error", role: "alert" }, message || "");
  const form = h("form", { class: "card narrow", "aria-labelledby": "token-title",
    onsubmit: async (e) => {
      e.preventDefault();
      setToken(input.value.trim());
      if (!(await start())) {
        replace(error, "The daemon refused that token.");
        input.focus();
      }
    } },
    h("h2", { id: "token-title" }, "Sign in"),
    h("p", { id: "token-help" }, "This jobq daemon asks for a token (one of its [[auth.tokens]]). It is kept in this tab only."),
    h("label", { for: "token" }, "Token"), input, error,
    h("button", { type: "submit" }, "Sign in"));
  replace(view, form);
  replace(who);
  input.focus();
}

function route() {
  if (!ctx) return;
  stop();
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = hash.split("?");
  const params = new URLSearchParams(query);
  for (const a of document.querySelectorAll("nav a")) {
    const here = a.getAttribute("href").slice(1);
    a.toggleAttribute("aria-current", here === "/" ? path === "/" : path.startsWith(here));
  }
  let m;
  if (path === "/") stop = overview.render(view, ctx, params);
  else if (path === "/jobs") stop = jobs.render(view, ctx, params);
  else if ((m = path.match(/^\/jobs\/([^/]+)$/))) stop = job.render(view, ctx, decodeURIComponent(m[1]));
  else if (path === "/submit") stop = submit.render(view, ctx, params);
  else if (path === "/schedules") stop = schedules.render(view, ctx, params);
  else {
    replace(view, h("p", {}, "No such page. "), h("a", { href: "#/" }, "Back to the overview"));
    stop = () => {};
  }
  stop = stop || (() => {});
  view.focus({ preventScroll: true });
}

/** Finds out who we are; false when the token was refused. */
async function start() {
  try {
    const me = await api("GET", "/v1/whoami");
    ctx = context(me);
    replace(who, `${me.principal} (${me.role})`,
      token() ? h("button", { class: "link", onclick: () => { setToken(null); ctx = null; askToken(); } }, "Sign out") : null);
    document.body.dataset.role = me.role;
    route();
    return true;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      if (!token()) askToken();
      else setToken(null);
      return false;
    }
    replace(view, h("p", { class: "field-error", role: "alert" }, `Cannot reach the daemon: ${e.message}`));
    return false;
  }
}

window.addEventListener("hashchange", route);
window.addEventListener("jobq:unauthorized", () => {
  if (ctx) {
    ctx = null;
    setToken(null);
    askToken("The daemon asked for a token again.");
  }
});
start();
