// The REST API client: the token, the Authorization header, and the API's error bodies.
// The token lives in sessionStorage only: it goes away with the tab and is never in a URL.

const TOKEN_KEY = "envrouter.token";
const READ_ONLY_KEY = "envrouter.readOnly";
const FLASH_KEY = "envrouter.flash";
export const API = "/api/v1";

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  sessionStorage.removeItem(READ_ONLY_KEY);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(READ_ONLY_KEY);
}

// Whether the server refused a write with this token (403). Known only from the server.
export function isReadOnly() {
  return sessionStorage.getItem(READ_ONLY_KEY) === "1";
}

// The event lets every open form disable itself at once when the server first says 403.
export const READ_ONLY_EVENT = "envrouter:read-only";

export function markReadOnly() {
  sessionStorage.setItem(READ_ONLY_KEY, "1");
  document.dispatchEvent(new CustomEvent(READ_ONLY_EVENT));
}

// A message to show once on the next page (e.g. why the operator is back at the login).
export function setFlash(text) {
  sessionStorage.setItem(FLASH_KEY, text);
}

export function takeFlash() {
  const text = sessionStorage.getItem(FLASH_KEY);
  sessionStorage.removeItem(FLASH_KEY);
  return text;
}

// One problem reported by the API: {object, field, reason}. `field` may be "" when the
// problem is not about one field (a 401, a 404, a conflict on the whole object).
export class ApiProblem {
  constructor(object, field, reason) {
    this.object = object || "";
    this.field = field || "";
    this.reason = reason || "";
  }
}

export class ApiError extends Error {
  constructor(status, problems) {
    super(problems.map((p) => p.reason).join("; ") || `HTTP ${status}`);
    this.status = status;
    this.problems = problems;
  }
}

// The API's 4xx body is {"detail": [{object, field, reason}, ...]} or {"detail": "text"}.
// FastAPI's own request validation ({loc, msg}) is read too, so nothing is ever swallowed.
export function problemsFromBody(status, body) {
  const detail = body && typeof body === "object" ? body.detail : undefined;
  if (Array.isArray(detail)) {
    return detail.map((item) => {
      if (item && typeof item === "object") {
        if ("reason" in item || "field" in item) {
          return new ApiProblem(item.object, String(item.field ?? ""), item.reason);
        }
        if ("loc" in item) {
          const loc = (item.loc || []).filter((part, i) => !(i === 0 && part === "body"));
          return new ApiProblem("request", loc.join("."), item.msg);
        }
      }
      return new ApiProblem("", "", String(item));
    });
  }
  if (typeof detail === "string") return [new ApiProblem("", "", detail)];
  if (typeof body === "string" && body) return [new ApiProblem("", "", body)];
  return [new ApiProblem("", "", `the server answered HTTP ${status}`)];
}

// Called on every 401: set by the app (clears the token, goes back to the login).
let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

export async function apiFetch(method, path, body, { token = getToken(), quiet401 = false } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(`${API}${path}`, init);
  } catch (exc) {
    throw new ApiError(0, [new ApiProblem("", "", `cannot reach the server (${exc.message})`)]);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, problemsFromBody(response.status, data));
    if (response.status === 401 && !quiet401) onUnauthorized(error);
    if (response.status === 403) markReadOnly();
    throw error;
  }
  return data;
}

export const api = {
  get: (path, opts) => apiFetch("GET", path, undefined, opts),
  put: (path, body, opts) => apiFetch("PUT", path, body, opts),
  post: (path, body, opts) => apiFetch("POST", path, body, opts),
};

// GET every path of `paths` ({key: path}) at once; a path that fails does not fail the others:
// {key: {ok: true, data} | {ok: false, error}}.
export async function getAll(paths) {
  const keys = Object.keys(paths);
  const results = await Promise.allSettled(keys.map((key) => api.get(paths[key])));
  const out = {};
  keys.forEach((key, i) => {
    out[key] = results[i].status === "fulfilled"
      ? { ok: true, data: results[i].value }
      : { ok: false, error: results[i].reason };
  });
  return out;
}
