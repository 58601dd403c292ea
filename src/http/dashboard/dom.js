// Building the page. Every value from the daemon (a job's name, command,
// output, an error message) goes in as a text node or an attribute value,
// never as markup: no string is ever parsed as HTML, so a job named
// `<img src=x onerror=alert(1)>` shows as exactly that text.

/** An element: `h("a", {href: "#/jobs", class: "x"}, "text", child, …)`.
 * Props starting with `on` are listeners; `class`, `for`, `aria-*`,
 * `data-*` and the rest are attributes. Children are nodes, strings or
 * numbers (as text), arrays of those, or null/false (left out). */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "value" || key === "checked" || key === "disabled") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Appends children (see `h`) to `el`. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replaces everything in `el` with `children`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A state badge: coloured, and readable without colour (its name and a
 * symbol of its own). */
const SYMBOLS = {
  waiting: "○", scheduled: "◷", queued: "…", running: "▶",
  succeeded: "✓", failed: "✗", cancelled: "⊘",
};
export function badge(state) {
  return h("span", { class: `badge state-${state}`, "data-state": state },
    `${SYMBOLS[state] || "?"} ${state}`);
}

/** "3 s ago", "in 2 min": a time relative to now, with the exact time as
 * its title. */
export function when(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  const t = new Date(iso);
  const s = Math.round((t.getTime() - Date.now()) / 1000);
  const abs = Math.abs(s);
  const [n, unit] = abs < 60 ? [abs, "s"] : abs < 3600 ? [Math.round(abs / 60), "min"]
    : abs < 86400 ? [Math.round(abs / 3600), "h"] : [Math.round(abs / 86400), "d"];
  const text = s <= 0 ? `${n} ${unit} ago` : `in ${n} ${unit}`;
  return h("time", { datetime: iso, title: t.toLocaleString() }, text);
}

/** Seconds between two times, as "1.23 s"; empty when either is missing. */
export function took(from, to) {
  if (!from || !to) return "";
  const s = (new Date(to) - new Date(from)) / 1000;
  return s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(2)} s`;
}

/** A job's command as one line: argv joined with shell quoting, or its shell. */
export function commandLine(job) {
  if (job.shell !== undefined && job.shell !== null) return job.shell;
  return (job.command || []).map(quote).join(" ");
}

/** Quotes one word for a POSIX shell when it needs it. */
export function quote(word) {
  return /^[A-Za-z0-9_\/.,:=@%+-]+$/.test(word) ? word : `'${String(word).replace(/'/g, `'\\''`)}'`;
}
