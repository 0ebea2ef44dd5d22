// Offline codes (YO1, docs/voucher.md "Offline codes") on this device: the credential, its key, the QR.
//
// Online, the page creates the device's offline credential (POST /offline-credentials: the secret is
// shown once) and keeps it in IndexedDB only as a NON-EXTRACTABLE WebCrypto HMAC key (YO1.importKey,
// extractable=false) with its credential id: the secret text is dropped at once and is never put in
// localStorage, sessionStorage or the DOM. With no network the page makes codes from that key
// (yibao/static/offline/yo1.js, loaded before this module) and draws them with the vendored
// qrcode-generator (yibao/static/vendor/, level M). A family member's code stays online only.
// Beside the key the record holds only what labels the code when the page starts with no session
// (psnMasked, nameMasked: masked as the server shows them; never the ID number) and the phone's clock
// offset from the server's Date header (codes are made at phone time + offset).
/* global YO1, qrcode */

const DB_NAME = "yb.app.offline";
const STORE = "credential";
const RECORD = "device"; // one credential per device: the record of this browser
const SEQ = "yb.app.offline.seq"; // the last {step, seq} shown, for every tab: not a secret (codes show both)
const SVG_NS = "http://www.w3.org/2000/svg";
const QUIET = 4; // modules of white around the symbol (ISO/IEC 18004)
const ALPHANUMERIC = /^[0-9A-Z $%*+\-./:]*$/;
const CLOCK_MAX_AGE_MS = 7 * 24 * 3600 * 1000; // an older offset is not trusted (the clock may have been set)
export const CLOCK_WARN_MS = 30_000; // |offset| beyond this: the page warns (one 30 s step)

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
  localStorage.removeItem(SEQ);
  return tx("readwrite", (s) => s.delete(RECORD));
}

/* The stored record whoever it is for (a start with no session and no network shows its code). A record
 * of an earlier version of the page (the full psn_no) is rewritten with the digest on this first read. */
export async function storedAny() {
  const rec = await readRecord();
  if (rec && rec.psn !== undefined) {
    rec.psnHash = await psnDigest(rec.psn);
    delete rec.psn;
    await writeRecord(rec);
  }
  return rec;
}

/* Whose record it is, without keeping the person's number on the phone: SHA-256 of "yb-psn:" + psn_no,
 * hex. The page only ever compares it with the logged-in person's; the label shown is psnMasked. */
export async function psnDigest(psn) {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode("yb-psn:" + psn));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

/* The stored credential if it is this person's on this device:
 * {credentialId, key, psnHash, deviceId, createdAt, psnMasked, nameMasked, clock: {offsetMs, at} | null}.
 * A record of an earlier version of the page (the full psn) is rewritten with the digest when it matches. */
export async function stored(psn, deviceId) {
  const rec = await readRecord();
  if (!rec || rec.deviceId !== deviceId) return null;
  const digest = await psnDigest(psn);
  if (rec.psnHash === digest) return rec;
  if (rec.psn !== undefined && rec.psn === psn) {
    delete rec.psn;
    rec.psnHash = digest;
    await writeRecord(rec);
    return rec;
  }
  return null;
}

// ------------------------------------------------------------------ the credential

/* psn_no masked as the service masks numbers (first 3, last 4): a label, not an identifier. */
export function maskPsn(psn) {
  return psn.length <= 7 ? "*".repeat(psn.length) : psn.slice(0, 3) + "*".repeat(psn.length - 7) + psn.slice(-4);
}

/* A new credential for this device (replacing the previous one at the service); only its key is kept.
 * label: {nameMasked} (the server's name_masked); clock: serverClock() of the page, or null. */
export async function enrol(authed, psn, deviceId, label = {}, clock = null) {
  const cred = await authed("POST", "/offline-credentials", { body: { device_id: deviceId } });
  const key = await YO1.importKey(cred.secret); // extractable = false: the key cannot leave WebCrypto
  const rec = {
    credentialId: cred.credential_id,
    key,
    psnHash: await psnDigest(psn),
    deviceId,
    createdAt: cred.created_at,
    psnMasked: maskPsn(psn),
    nameMasked: label.nameMasked || "",
    clock,
  };
  await writeRecord(rec);
  localStorage.removeItem(SEQ);
  return rec;
}

/* Keep a usable credential: the stored one while the service lists it active, else a new one. */
export async function ensure(authed, psn, deviceId, label = {}, clock = null) {
  const rec = await stored(psn, deviceId);
  if (rec) {
    const { items } = await authed("GET", "/offline-credentials");
    if (items.some((c) => c.credential_id === rec.credentialId && c.status === "active")) {
      if (label.nameMasked && rec.nameMasked !== label.nameMasked) {
        Object.assign(rec, { nameMasked: label.nameMasked, psnMasked: maskPsn(psn) });
        await writeRecord(rec);
      }
      return rec;
    }
    await forget(); // ended elsewhere (lost phone, suspension, activation on another device)
  }
  return enrol(authed, psn, deviceId, label, clock);
}

/* Keep the page's latest clock measurement with the credential (at most once a minute unless it moved). */
export async function saveClock(clock) {
  if (!clock) return;
  const rec = await readRecord();
  if (!rec) return;
  const old = rec.clock;
  if (old && Math.abs(old.offsetMs - clock.offsetMs) < 1000 && clock.at - old.at < 60_000) return;
  rec.clock = clock;
  await writeRecord(rec);
}

/* The offset (ms) to add to this phone's clock: the page's own measurement, else the stored one while
 * it is fresh (under 7 days old), else 0. */
export function offsetMs(rec, live = null, nowMs = Date.now()) {
  const c = live || (rec && rec.clock);
  return c && Math.abs(nowMs - c.at) < CLOCK_MAX_AGE_MS ? c.offsetMs : 0;
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
    return JSON.parse(localStorage.getItem(SEQ) || "null");
  } catch {
    return null;
  }
}

/* The next code of this step: every code shown is new (each is single use), seq 0…15 within a step.
 * The step is the server's: phone time + offset (offsetMs()).
 * → {code, step, seq, endsAt (ms of the phone's clock: the step's end, when the next code is due)} */
export async function nextCode(rec, offset = 0, nowMs = Date.now()) {
  const step = YO1.stepAt((nowMs + offset) / 1000);
  const last = lastShown();
  let seq = last && last.step === step ? last.seq + 1 : 0;
  if (seq > YO1.MAX_SEQ) seq = YO1.MAX_SEQ; // 16 codes in 30 s: the last one again until the next step
  const code = await YO1.make(rec.credentialId, rec.key, step, seq);
  localStorage.setItem(SEQ, JSON.stringify({ step, seq }));
  return { code, step, seq, endsAt: (step + 1) * YO1.PERIOD_S * 1000 - offset };
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
