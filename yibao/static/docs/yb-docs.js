// yibao API docs: Swagger UI served from this origin, with "Try it out" that signs institution requests.
//
// An institution enters its key id and secret once (kept in this page's memory only, never stored or sent);
// every request to an operation secured by InstitutionSignature then gets X-Yb-Key, X-Yb-Timestamp,
// X-Yb-Nonce and X-Yb-Signature = hex HMAC-SHA256(secret, METHOD\nPATH[?QUERY]\nTIMESTAMP\nNONCE\nSHA256_HEX(BODY)),
// computed with WebCrypto exactly as docs/conventions.md describes. Users paste an access token through
// Swagger UI's own "Authorize" (UserBearer); operators their ADMIN_TOKEN (AdminBearer).
"use strict";

(function () {
  const SPEC_URL = document.documentElement.dataset.spec;
  const enc = new TextEncoder();
  const creds = { keyId: "", secret: "" };
  let institutionOps = []; // [{method, re}] of operations whose security names InstitutionSignature

  const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");

  async function sha256Hex(bytes) {
    return hex(await crypto.subtle.digest("SHA-256", bytes));
  }

  async function hmacHex(secret, text) {
    const key = await crypto.subtle.importKey("raw", enc.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
      "sign",
    ]);
    return hex(await crypto.subtle.sign("HMAC", key, enc.encode(text)));
  }

  function nonce() {
    const b = new Uint8Array(12);
    crypto.getRandomValues(b);
    return hex(b);
  }

  function bodyBytes(body) {
    if (body === undefined || body === null || body === "") return new Uint8Array(0);
    if (typeof body === "string") return enc.encode(body);
    if (body instanceof ArrayBuffer) return new Uint8Array(body);
    if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
    return enc.encode(JSON.stringify(body));
  }

  // The canonical string of the contract, for the request as the browser will send it.
  async function canonical(method, url, body, ts, n) {
    const u = new URL(url, window.location.href);
    // The server signs the decoded path (what the application sees) and the raw query string.
    const target = decodeURIComponent(u.pathname) + (u.search ? u.search : "");
    return [method.toUpperCase(), target, ts, n, await sha256Hex(bodyBytes(body))].join("\n");
  }

  function needsSignature(method, url) {
    const path = new URL(url, window.location.href).pathname;
    return institutionOps.some((op) => op.method === method.toUpperCase() && op.re.test(path));
  }

  async function requestInterceptor(req) {
    if (!creds.keyId || !creds.secret || !needsSignature(req.method || "GET", req.url)) return req;
    if (typeof req.body === "object" && req.body !== null && !(req.body instanceof ArrayBuffer)) {
      req.body = JSON.stringify(req.body); // sign exactly the bytes that are sent
    }
    const ts = String(Math.floor(Date.now() / 1000));
    const n = nonce();
    const text = await canonical(req.method || "GET", req.url, req.body, ts, n);
    req.headers = req.headers || {};
    req.headers["X-Yb-Key"] = creds.keyId;
    req.headers["X-Yb-Timestamp"] = ts;
    req.headers["X-Yb-Nonce"] = n;
    req.headers["X-Yb-Signature"] = await hmacHex(creds.secret, text);
    return req;
  }

  function collectInstitutionOps(spec) {
    const ops = [];
    for (const [path, item] of Object.entries(spec.paths || {})) {
      for (const [method, op] of Object.entries(item)) {
        const security = (op && op.security) || [];
        if (!security.some((s) => Object.prototype.hasOwnProperty.call(s, "InstitutionSignature"))) continue;
        const pattern = path
          .split(/(\{[^}]+\})/)
          .map((part) => (part.startsWith("{") ? "[^/]+" : part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
          .join("");
        ops.push({ method: method.toUpperCase(), re: new RegExp("^" + pattern + "/?$") });
      }
    }
    return ops;
  }

  function bindPanel() {
    const form = document.getElementById("yb-institution");
    const state = document.getElementById("yb-institution-state");
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      creds.keyId = form.elements["key_id"].value.trim();
      creds.secret = form.elements["secret"].value;
      form.elements["secret"].value = "";
      state.textContent = creds.keyId && creds.secret ? `signing as ${creds.keyId}` : "not signing";
      state.dataset.signing = creds.keyId && creds.secret ? "yes" : "no";
    });
    form.addEventListener("reset", () => {
      creds.keyId = creds.secret = "";
      state.textContent = "not signing";
      state.dataset.signing = "no";
    });
  }

  async function start() {
    bindPanel();
    const resp = await fetch(SPEC_URL, { headers: { Accept: "application/json" } });
    const spec = await resp.json();
    institutionOps = collectInstitutionOps(spec);
    window.ybDocs = { canonical, hmacHex, institutionOps: () => institutionOps };
    window.ui = SwaggerUIBundle({
      spec,
      dom_id: "#swagger-ui",
      deepLinking: true,
      docExpansion: "none",
      persistAuthorization: false,
      tryItOutEnabled: false,
      displayRequestDuration: true,
      requestInterceptor,
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
    });
  }

  start().catch((err) => {
    document.getElementById("swagger-ui").textContent = "Could not load the API document: " + err;
  });
})();
