// Calls to /api/v1: JSON in and out, problem+json turned into an ApiError carrying the `code`.
// Nothing here logs a request or a token; tokens travel in headers only, never in URLs.
import { lang } from "./i18n.js";
import { signatureHeaders } from "./sign.js";

export class ApiError extends Error {
  constructor(code, status, detail, extra = {}) {
    super(code);
    this.code = code;
    this.status = status;
    this.detail = detail || "";
    this.extra = extra;
  }
}

// The server's clock as of the last successful answer: {offsetMs (server − this device), at (device ms)}.
// From its Date header (whole seconds: +500 ms centres the truncation), so good to about a second.
let clock = null;
export const serverClock = () => clock;

function noteDate(resp) {
  const date = Date.parse(resp.headers.get("Date") || "");
  if (Number.isFinite(date)) clock = { offsetMs: date + 500 - Date.now(), at: Date.now() };
}

// options: body (object), token (user bearer), creds ({keyId, secret}: sign), headers, signal
export async function api(method, path, options = {}) {
  const url = "/api/v1" + path;
  const bodyText = options.body === undefined ? "" : JSON.stringify(options.body);
  const headers = { Accept: "application/json", "Accept-Language": lang() === "en" ? "en" : "zh-CN" };
  if (bodyText) headers["Content-Type"] = "application/json";
  if (options.token) headers.Authorization = "Bearer " + options.token;
  Object.assign(headers, options.headers || {});
  if (options.creds) Object.assign(headers, await signatureHeaders(options.creds, method, url, bodyText));
  let resp;
  try {
    resp = await fetch(url, {
      method,
      headers,
      body: bodyText || undefined,
      signal: options.signal,
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new ApiError("NETWORK", 0, "");
  }
  if (resp.ok) noteDate(resp);
  if (resp.status === 204) return null;
  let data = null;
  try {
    data = await resp.json();
  } catch {
    data = null;
  }
  if (!resp.ok) {
    const code = data && typeof data.code === "string" ? data.code : resp.status >= 500 ? "SERVER" : "UNKNOWN";
    const extra = data && typeof data === "object" ? data : {};
    throw new ApiError(code, resp.status, extra.detail, extra);
  }
  return data;
}
