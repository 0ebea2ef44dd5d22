// Offline codes (YO1, docs/voucher.md "Offline codes") on this device: the credential, its key, the QR.
//
// Online, the page creates the device's offline credential (POST /offline-credentials: the secret is
// shown once) and keeps it in IndexedDB only as a NON-EXTRACTABLE WebCrypto HMAC key (YO1.importKey,
// extractable=false) with its credential id: the secret text is dropped at once and is never put in
// localStorage, sessionStorage or the DOM. With no network the page makes codes from that key
// (yibao/static/offline/yo1.js, loaded before this module) and draws them with the vendored
// qrcode-generator (yibao/static/vendor/, level M). A family member's code stays online only.
/* global YO1, qrcode */

const DB_NAME = "yb.app.offline";
const STORE = "credential";
const RECORD = "device"; // one credential per device: the record of this browser
const SEQ = "yb.app.offline.seq"; // the last {step, seq} shown: not a secret (every code shows both)
const SVG_NS = "http://www.w3.org/2000/svg";
const QUIET = 4; // modules of white around the symbol (ISO/IEC 18004)
const ALPHANUMERIC = /^[0-9A-Z $%*+\-./:]*$/;

// ------------------------------------------------------------------ IndexedDB

function openDb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function tx(mode, fn) {
  const db = await openDb();
  try {
    return await new Promise((resolve, reject) => {
      const t = db.transaction(STORE, mode);
      const req = fn(t.objectStore(STORE));
      t.oncomplete = () => resolve(req.result);
      t.onerror = () => reject(t.error);
      t.onabort = () => reject(t.error);
    });
  } finally {
    db.close();
  }
}

const readRecord = () => tx("readonly", (s) => s.get(RECORD));
const writeRecord = (rec) => tx("readwrite", (s) => s.put(rec, RECORD));

/* Forget this device's key (the server's credential is ended separately, by end()). */
export function forget() {
  sessionStorage.removeItem(SEQ);
  return tx("readwrite", (s) => s.delete(RECORD));
}

/* The stored credential if it is this person's on this device: {credentialId, key, psn, deviceId, createdAt}. */
export async function stored(psn, deviceId) {
  const rec = await readRecord();
  return rec && rec.psn === psn && rec.deviceId === deviceId ? rec : null;
}

// ------------------------------------------------------------------ the credential

/* A new credential for this device (replacing the previous one at the service); only its key is kept. */
export async function enrol(authed, psn, deviceId) {
  const cred = await authed("POST", "/offline-credentials", { body: { device_id: deviceId } });
  const key = await YO1.importKey(cred.secret); // extractable = false: the key cannot leave WebCrypto
  const rec = { credentialId: cred.credential_id, key, psn, deviceId, createdAt: cred.created_at };
  await writeRecord(rec);
  sessionStorage.removeItem(SEQ);
  return rec;
}

/* Keep a usable credential: the stored one while the service lists it active, else a new one. */
export async function ensure(authed, psn, deviceId) {
  const rec = await stored(psn, deviceId);
  if (rec) {
    const { items } = await authed("GET", "/offline-credentials");
    if (items.some((c) => c.credential_id === rec.credentialId && c.status === "active")) return rec;
    await forget(); // ended elsewhere (lost phone, suspension, activation on another device)
  }
  return enrol(authed, psn, deviceId);
}

/* End this device's credential at the service (DELETE) and forget its key. */
export async function end(authed) {
  const rec = await readRecord();
  if (rec) await authed("DELETE", "/offline-credentials/" + encodeURIComponent(rec.credentialId));
  await forget();
}

// ------------------------------------------------------------------ codes

function lastShown() {
  try {
    return JSON.parse(sessionStorage.getItem(SEQ) || "null");
  } catch {
    return null;
  }
}

/* The next code of this step: every code shown is new (each is single use), seq 0…15 within a step.
 * → {code, step, seq, endsAt (ms: the step's end, when the next code is due)} */
export async function nextCode(rec, nowMs = Date.now()) {
  const step = YO1.stepAt(nowMs / 1000);
  const last = lastShown();
  let seq = last && last.step === step ? last.seq + 1 : 0;
  if (seq > YO1.MAX_SEQ) seq = YO1.MAX_SEQ; // 16 codes in 30 s: the last one again until the next step
  const code = await YO1.make(rec.credentialId, rec.key, step, seq);
  sessionStorage.setItem(SEQ, JSON.stringify({ step, seq }));
  return { code, step, seq, endsAt: (step + 1) * YO1.PERIOD_S * 1000 };
}

/* Draw text as a QR (level M, the smallest version that holds it) into figure; → the QR version. */
export function drawQr(figure, text) {
  const qr = qrcode(0, "M");
  qr.addData(text, ALPHANUMERIC.test(text) ? "Alphanumeric" : "Byte");
  qr.make();
  const n = qr.getModuleCount();
  const size = n + 2 * QUIET;
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${size} ${size}`);
  svg.setAttribute("shape-rendering", "crispEdges");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const bg = document.createElementNS(SVG_NS, "rect");
  bg.setAttribute("width", String(size));
  bg.setAttribute("height", String(size));
  bg.setAttribute("fill", "#fff");
  let d = "";
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) if (qr.isDark(r, c)) d += `M${c + QUIET} ${r + QUIET}h1v1h-1z`;
  }
  const path = document.createElementNS(SVG_NS, "path");
  path.setAttribute("d", d);
  path.setAttribute("fill", "#000");
  svg.append(bg, path);
  figure.replaceChildren(svg);
  return (n - 17) / 4;
}
