// Institution request signing with WebCrypto, as the contract says (the same function as the docs page,
// yibao/static/docs/yb-docs.js): X-Yb-Signature = hex HMAC-SHA256(secret,
// METHOD\nPATH[?QUERY]\nTIMESTAMP\nNONCE\nSHA256_HEX(BODY)).
const enc = new TextEncoder();

const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");

export async function sha256Hex(bytes) {
  return hex(await crypto.subtle.digest("SHA-256", bytes));
}

export async function hmacHex(secret, text) {
  const key = await crypto.subtle.importKey("raw", enc.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  return hex(await crypto.subtle.sign("HMAC", key, enc.encode(text)));
}

export function randomHex(n = 12) {
  const b = new Uint8Array(n);
  crypto.getRandomValues(b);
  return hex(b);
}

// The canonical string for the request as the browser sends it: decoded path, raw query string.
export async function canonical(method, url, bodyText, ts, nonce) {
  const u = new URL(url, window.location.href);
  const target = decodeURIComponent(u.pathname) + (u.search ? u.search : "");
  return [method.toUpperCase(), target, ts, nonce, await sha256Hex(enc.encode(bodyText || ""))].join("\n");
}

// The four signature headers for one request (a new nonce each time).
export async function signatureHeaders(creds, method, url, bodyText) {
  const ts = String(Math.floor(Date.now() / 1000));
  const nonce = randomHex(12);
  const text = await canonical(method, url, bodyText, ts, nonce);
  return {
    "X-Yb-Key": creds.keyId,
    "X-Yb-Timestamp": ts,
    "X-Yb-Nonce": nonce,
    "X-Yb-Signature": await hmacHex(creds.secret, text),
  };
}
