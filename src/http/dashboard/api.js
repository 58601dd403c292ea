// The daemon's API, as the page uses it: JSON requests with the token the
// user gave (kept in sessionStorage: gone when the tab closes), errors as
// `ApiError` with the field the daemon named, and Server-Sent Events read
// through fetch (EventSource cannot send an Authorization header), resumed
// with Last-Event-ID when the connection drops.

const TOKEN_KEY = "jobq.token";

/** The token, if the user gave one. */
export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** Keeps `value` as the token for this tab; null forgets it. */
export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** An error answer: `status`, and the body's `code`, `message`, `field`. */
export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || "http";
    this.field = e.field || null;
  }
}

function headers(extra = {}) {
  const h = { Accept: "application/json", ...extra };
  const t = token();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

/** Calls the API; resolves to the parsed answer (null for 204), rejects
 * with an ApiError. A 401 also tells the page to ask for a token. */
export async function api(method, path, body) {
  const init = { method, headers: headers(), cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const text = await res.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!res.ok) {
    const err = new ApiError(res.status, parsed);
    if (res.status === 401) window.dispatchEvent(new CustomEvent("jobq:unauthorized"));
    throw err;
  }
  return parsed;
}

/** The raw bytes of a path (job output), as a Uint8Array. */
export async function bytes(path) {
  const res = await fetch(path, { headers: headers({ Accept: "application/octet-stream" }), cache: "no-store" });
  if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
  return new Uint8Array(await res.arrayBuffer());
}

/** Follows the Server-Sent Events of `path`, calling `onEvent({event, data,
 * id})` for each, until `signal` aborts or an `end` event comes. After a
 * dropped connection it reconnects (after a second) with Last-Event-ID, so
 * nothing is lost or repeated; `onState("live"|"reconnecting")` says which. */
export async function follow(path, { signal, onEvent, onState = () => {}, lastEventId = null }) {
  let last = lastEventId;
  while (!signal.aborted) {
    let ended = false;
    try {
      const h = headers({ Accept: "text/event-stream" });
      if (last) h["Last-Event-ID"] = last;
      const res = await fetch(path, { headers: h, signal, cache: "no-store" });
      if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
      onState("live");
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      let ev = { event: "message", data: [], id: null };
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let nl;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, nl).replace(/\r$/, "");
          buffer = buffer.slice(nl + 1);
          if (line === "") {
            if (ev.data.length || ev.event !== "message") {
              if (ev.id !== null) last = ev.id;
              const out = { event: ev.event, data: ev.data.join("\n"), id: ev.id };
              onEvent(out);
              if (out.event === "end") ended = true;
            }
            ev = { event: "message", data: [], id: null };
            continue;
          }
          if (line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "data") ev.data.push(val);
          else if (field === "event") ev.event = val;
          else if (field === "id") ev.id = val;
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      if (e instanceof ApiError && e.status < 500) throw e;
    }
    if (ended) return;
    onState("reconnecting");
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** Decodes standard base64 into bytes. */
export function fromBase64(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
