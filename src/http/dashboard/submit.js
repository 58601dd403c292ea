// The submit form: a command (split into words as a shell would, without
// running one) or a shell line, and the common options. The daemon checks
// the job; its error names the field at fault, and the message goes
// beside that field. A submitted job opens in its own view, which follows
// it live.

import { api } from "./api.js";
import { h, replace } from "./dom.js";

/** Splits a line into words: spaces separate, '…' and "…" quote, \ escapes. */
export function words(line) {
  const out = [];
  let cur = null;
  let quote = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = null;
      else if (c === "\\" && quote === '"' && i + 1 < line.length) cur += line[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      quote = c; cur = cur ?? "";
    } else if (c === "\\" && i + 1 < line.length) {
      cur = (cur ?? "") + line[++i];
    } else if (/\s/.test(c)) {
      if (cur !== null) { out.push(cur); cur = null; }
    } else {
      cur = (cur ?? "") + c;
    }
  }
  if (quote) throw new Error(`an unclosed ${quote}`);
  if (cur !== null) out.push(cur);
  return out;
}

const FIELDS = [
  ["queue", "Queue", "default"],
  ["priority", "Priority", "0"],
  ["delay", "Delay", "e.g. 10s, 5m"],
  ["timeout", "Timeout", "e.g. 1h"],
  ["retries", "Retries", "0"],
];

export function render(root, ctx) {
  if (!ctx.canSubmit) {
    replace(root, h("p", {}, "This token may only read: it cannot submit jobs."));
    return () => {};
  }
  const errors = {};
  const fieldError = (name) => (errors[name] = h("p", { class: "field-error", id: `err-${name}`, role: "alert" }));
  const described = (name) => ({ "aria-describedby": `err-${name}` });
  const program = h("textarea", { id: "s-program", name: "program", required: true, rows: 2, ...described("command"),
    placeholder: "make -C /srv/site build" });
  const useShell = h("input", { type: "checkbox", id: "s-shell", name: "shell" });
  const inputs = {};
  const env = h("textarea", { id: "s-env", name: "env", rows: 2, placeholder: "KEY=value, one a line", ...described("env") });
  const general = h("p", { class: "field-error", role: "alert" });
  const form = h("form", { class: "card", "aria-labelledby": "submit-title", novalidate: true,
    onsubmit: async (e) => {
      e.preventDefault();
      for (const el of Object.values(errors)) replace(el);
      for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
      replace(general);
      const body = {};
      try {
        if (useShell.checked) body.shell = program.value;
        else body.command = words(program.value);
      } catch (err) {
        return show(useShell.checked ? "shell" : "command", `The command has ${err.message}.`);
      }
      for (const [name] of FIELDS) {
        const v = inputs[name].value.trim();
        if (!v) continue;
        body[name] = name === "priority" || name === "retries" ? (/^-?\d+$/.test(v) ? Number(v) : v) : v;
      }
      const lines = env.value.split("\n").map((l) => l.trim()).filter(Boolean);
      if (lines.length) {
        body.env = {};
        for (const l of lines) {
          const eq = l.indexOf("=");
          if (eq <= 0) return show("env", `"${l}" is not KEY=value.`);
          body.env[l.slice(0, eq)] = l.slice(eq + 1);
        }
      }
      try {
        const job = await api("POST", "/v1/jobs", body);
        ctx.say(`Submitted job #${job.number}.`);
        location.hash = `#/jobs/${job.id}`;
      } catch (err) {
        show(err.field, err.message);
      }
    } },
    h("h2", { id: "submit-title" }, "Submit a job"),
    h("label", { for: "s-program" }, "Command"), program, fieldError("command"), fieldError("shell"),
    h("label", { for: "s-shell", class: "inline" }, useShell, " Run it with the shell (sh -c) instead of as words"),
    h("div", { class: "filters" }, FIELDS.map(([name, label, hint]) => h("div", {},
      h("label", { for: `s-${name}` }, label),
      (inputs[name] = h("input", { id: `s-${name}`, name, placeholder: hint, ...described(name) })),
      fieldError(name)))),
    h("label", { for: "s-env" }, "Environment"), env, fieldError("env"),
    general,
    h("button", { type: "submit" }, "Submit"));

  /** Puts `message` beside the field the daemon named (`env.KEY` is env). */
  function show(field, message) {
    const name = (field || "").split(/[.[]/)[0];
    const box = errors[name];
    if (!box) return replace(general, field ? `${field}: ${message}` : message);
    replace(box, message);
    const input = name === "command" || name === "shell" ? program : name === "env" ? env : inputs[name];
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
  }

  replace(root, form);
  program.focus();
  return () => {};
}
