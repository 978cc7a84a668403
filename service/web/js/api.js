// The API client: the bearer token (asked once, kept in this tab's sessionStorage), JSON calls, images fetched
// with the token (as blob URLs, so no token ever goes into a URL), and server-sent events read from a POST.

const TOKEN_KEY = "skyscout.token";
let waiting = null; // the pending token prompt, shared by the calls that hit 401 at once

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

function askToken(message) {
  if (waiting) return waiting;
  const dialog = document.getElementById("token-dialog");
  const input = document.getElementById("token-input");
  document.getElementById("token-error").textContent = message || "";
  input.value = "";
  waiting = new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      const value = input.value.trim();
      input.value = "";
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      waiting = null;
      resolve(Boolean(value));
    }, { once: true });
  });
  dialog.showModal();
  input.focus();
  return waiting;
}

// before the first call: ask for a token when the server wants one and the tab has none (no 401 first)
export async function ensureToken() {
  if (token()) return;
  const health = await (await fetch("/healthz")).json();
  if (health.auth === "bearer") await askToken("");
}

function headers(extra) {
  const h = new Headers(extra || {});
  const t = token();
  if (t) h.set("Authorization", `Bearer ${t}`);
  return h;
}

// fetch with the token; on 401/403 ask for a token once and retry
export async function request(path, options = {}) {
  for (let attempt = 0; attempt < 3; attempt++) {
    const response = await fetch(path, { ...options, headers: headers(options.headers) });
    if (response.status !== 401 && !(response.status === 403 && !(await isScopeError(response)))) {
      return response;
    }
    forgetToken();
    const why = response.status === 401 ? "" : "That token was not accepted.";
    if (!(await askToken(why))) break;
  }
  throw new ApiError(401, "no token: the API needs a bearer token");
}

async function isScopeError(response) {
  // a read token refused an operation: keep the token, report the error
  try {
    const body = await response.clone().json();
    return /only read|operate token/.test(body.error || "");
  } catch {
    return false;
  }
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.error) message = body.error;
  } catch { /* not JSON */ }
  return new ApiError(response.status, message);
}

// a JSON call; returns {data, response}; throws ApiError with the API's own error message
export async function call(path, { method = "GET", json, body, contentType } = {}) {
  const options = { method };
  if (json !== undefined) {
    options.body = JSON.stringify(json);
    options.headers = { "Content-Type": "application/json" };
  } else if (body !== undefined) {
    options.body = body;
    options.headers = { "Content-Type": contentType || "application/octet-stream" };
  }
  const response = await request(path, options);
  if (!response.ok) throw await failure(response);
  const text = await response.text();
  return { data: text ? JSON.parse(text) : null, response };
}

// the server's settings for the page (GET /v1/ui), asked once
let settings = null;
export async function ui() {
  if (!settings) settings = get("/v1/ui");
  return settings;
}

export async function get(path) {
  return (await call(path)).data;
}

export async function post(path, json) {
  return (await call(path, { method: "POST", json })).data;
}

// the server's own time for a response (its Server-Timing header), in milliseconds
export function serverTime(response) {
  const m = /app;dur=([\d.]+)/.exec(response.headers.get("server-timing") || "");
  return m ? Number(m[1]) : null;
}

// images the API serves (thumbnails, tiles) as blob URLs, fetched with the token; the last few hundred kept
const blobs = new Map();
export async function imageUrl(path) {
  if (blobs.has(path)) return blobs.get(path);
  const response = await request(path);
  if (!response.ok) throw await failure(response);
  const url = URL.createObjectURL(await response.blob());
  blobs.set(path, url);
  if (blobs.size > 600) {
    const [oldest, old] = blobs.entries().next().value;
    blobs.delete(oldest);
    URL.revokeObjectURL(old);
  }
  return url;
}

// POST a JSON body and read the server-sent events of the answer: onEvent(name, data) per event
export async function stream(path, json, onEvent, signal) {
  const response = await request(path, {
    method: "POST", body: JSON.stringify(json), signal,
    headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
  });
  if (!response.ok) throw await failure(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (!data.length) continue; // keep-alive pings
      let parsed = data.join("\n");
      try { parsed = JSON.parse(parsed); } catch { /* plain text */ }
      onEvent(name, parsed);
    }
  }
}
