// /app/: the insured person's page. Activation, the code, live scan results, history, account, family.
// Tokens live in this tab's sessionStorage (gone when the tab closes) and travel only in the
// Authorization header; nothing is put in a URL or logged.
import { api, ApiError, serverClock } from "./shared/api.js";
import { applyI18n, businessName, lang, setLang, t, when, yuan } from "./shared/i18n.js";
import { problemText, showProblem } from "./shared/problems.js";
import * as offline from "./offline.js";

const $ = (id) => document.getElementById(id);
const SESSION = "yb.app.session";
const DEVICE = "yb.app.device"; // a device id is not a secret: it names this browser to the service
const OFFLINE_OFF = "yb.app.offline.off"; // "1": the person turned offline codes off here (a preference)
const REFRESH_BEFORE_S = 5; // a new code this long before the old one expires
const WAIT_S = 25; // long-poll wait (the service bounds it too)

const state = {
  session: loadSession(),
  target: null, // null: my code; else {psn_no, name_masked} of the family member shown
  code: null, // {mode: "signed" | "offline", expiresAt (ms)}
  offlineReady: null, // the promise of this page's check of the offline credential (offline.ensure)
  offlineOnly: null, // the stored credential shown by a page that started with no session and no network
  timer: null,
  loading: false,
  poll: null, // AbortController of the events loop
  cursor: null,
  usageCursor: null,
  screen: null,
};

// ------------------------------------------------------------------ session

function loadSession() {
  try {
    return JSON.parse(sessionStorage.getItem(SESSION) || "null");
  } catch {
    return null;
  }
}

function saveSession(s) {
  state.session = s;
  if (s) sessionStorage.setItem(SESSION, JSON.stringify(s));
  else sessionStorage.removeItem(SESSION);
}

function maskName(name) {
  const chars = Array.from(name.trim());
  if (chars.length <= 1) return chars.join("");
  if (chars.length === 2) return chars[0] + "*";
  return chars[0] + "*".repeat(chars.length - 2) + chars[chars.length - 1];
}

function deviceId() {
  let id = localStorage.getItem(DEVICE);
  if (!id) {
    const b = new Uint8Array(8);
    crypto.getRandomValues(b);
    id = "web-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    localStorage.setItem(DEVICE, id);
  }
  return id;
}

// The masked name and insured region the registry holds: shown above the code, so a wrong region is
// caught before the counter (real scan failure #1).
async function loadMe() {
  try {
    const me = await authed("GET", "/persons/me");
    saveSession({ ...state.session, nameMasked: me.name_masked, region: me.insured_region });
  } catch (err) {
    console.warn("persons/me", err && err.code);
  }
}

function storePair(pair, extra = {}) {
  const s = { ...(state.session || {}), ...extra };
  s.access = pair.access_token;
  s.refresh = pair.refresh_token;
  s.accessExp = Date.now() + (pair.expires_in || 900) * 1000;
  if (pair.psn_no) s.psn = pair.psn_no;
  saveSession(s);
}

let refreshing = null;
async function refreshSession() {
  // One rotation at a time: the old refresh token is single use.
  if (!refreshing) {
    refreshing = api("POST", "/sessions/refresh", { body: { refresh_token: state.session.refresh } })
      .then((pair) => storePair(pair))
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

function sessionEnded(err) {
  stopPolling();
  saveSession(null);
  forgetOffline();
  state.target = null;
  show("activate");
  showProblem($("problem"), err || new ApiError("TOKEN_INVALID", 401));
}

// A user call: refreshes the access token before it expires, and once more on TOKEN_INVALID.
async function authed(method, path, options = {}) {
  if (!state.session) throw new ApiError("AUTHENTICATION_REQUIRED", 401);
  try {
    if (Date.now() > state.session.accessExp - 60_000) await refreshSession();
    try {
      return await api(method, path, { ...options, token: state.session.access });
    } catch (err) {
      if (!(err instanceof ApiError) || err.code !== "TOKEN_INVALID") throw err;
      await refreshSession();
      return await api(method, path, { ...options, token: state.session.access });
    }
  } catch (err) {
    if (err instanceof ApiError && ["TOKEN_INVALID", "REFRESH_TOKEN_INVALID", "REFRESH_TOKEN_REUSED"].includes(err.code)) {
      sessionEnded(err);
    }
    throw err;
  }
}

// ------------------------------------------------------------------ screens

function clearProblem() {
  $("problem").hidden = true;
}

function show(name) {
  state.screen = name;
  for (const el of document.querySelectorAll(".screen")) el.hidden = el.id !== "screen-" + name;
  $("tabs").hidden = name === "activate";
  for (const b of document.querySelectorAll("#tabs button")) {
    if (b.dataset.screen === name) b.setAttribute("aria-current", "page");
    else b.removeAttribute("aria-current");
  }
  document.body.dataset.screen = name;
  $("offline-login").hidden = true;
  if (name !== "code") stopCountdown();
  const load = { code: loadCode, history: loadHistory, account: loadAccount, family: loadFamily, more: loadMore }[
    name
  ];
  if (load) load().catch(fail);
}

function fail(err) {
  if (err && err.name === "AbortError") return;
  showProblem($("problem"), err);
}

async function busy(button, fn) {
  clearProblem();
  const label = button.textContent;
  button.disabled = true;
  button.textContent = t("app.busy");
  try {
    await fn();
  } catch (err) {
    fail(err);
  } finally {
    button.disabled = false;
    button.textContent = label;
  }
}

// ------------------------------------------------------------------ activation

async function activate(ev) {
  ev.preventDefault();
  const form = ev.target;
  const name = form.elements.name.value.trim();
  const idNumber = form.elements.id_number.value.trim().toUpperCase();
  await busy(form.querySelector("button"), async () => {
    // The sandbox face check (development); production plugs in the provider's own check here.
    const proof = await api("POST", "/sandbox/identity-proofs", { body: { id_number: idNumber, name } });
    const pair = await api("POST", "/activations", {
      body: { id_number: idNumber, name, identity_proof: proof.identity_proof, device_id: deviceId() },
    });
    // Only the masked name is kept, to show above the code; the ID number is not kept at all.
    saveSession(null);
    state.offlineOnly = null;
    storePair(pair, { nameMasked: maskName(name) });
    form.reset();
    await loadMe();
    startPolling();
    show("code");
  });
}

// ------------------------------------------------------------------ the code

function renderQr(dataUri) {
  // The SVG comes as a data: URI; it is parsed into the page (CSP allows no data: images).
  const comma = dataUri.indexOf(",");
  const meta = dataUri.slice(0, comma);
  const payload = dataUri.slice(comma + 1);
  const text = meta.endsWith(";base64")
    ? new TextDecoder().decode(Uint8Array.from(atob(payload), (c) => c.charCodeAt(0)))
    : decodeURIComponent(payload);
  const doc = new DOMParser().parseFromString(text, "image/svg+xml");
  const svg = doc.documentElement;
  if (svg.nodeName !== "svg" || svg.querySelector("script, foreignObject")) throw new ApiError("SERVER", 500);
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  $("qr").replaceChildren(document.importNode(svg, true));
}

function renderWho() {
  if (!state.session) {
    // Started with no network and no session: whose offline code this is, from the stored labels.
    const rec = state.offlineOnly;
    $("who-title").textContent = t("app.offline.start");
    $("who-name").textContent = rec ? rec.nameMasked : "";
    $("who-region").hidden = !rec;
    $("who-region").textContent = rec ? t("app.offline.psn", { psn: rec.psnMasked }) : "";
    $("back-to-me").hidden = true;
    document.body.dataset.showing = "offline-start";
    return;
  }
  const member = state.target;
  $("who-title").textContent = member ? t("app.code.member", { name: member.name_masked }) : t("app.code.mine");
  $("who-name").textContent = member ? member.name_masked : state.session.nameMasked || "";
  const region = member ? member.insured_region : state.session.region;
  $("who-region").hidden = !region;
  $("who-region").textContent = region ? t("app.code.region", { region }) : "";
  $("back-to-me").hidden = !member;
  document.body.dataset.showing = member ? member.psn_no : "self";
}

function setMode(mode) {
  // signed | offline | member-offline: said in words and a symbol, not by colour alone.
  document.body.dataset.codeMode = mode;
  const badge = $("code-mode");
  badge.dataset.mode = mode;
  badge.hidden = mode === "signed";
  badge.textContent = mode === "offline" ? t("app.offline.badge") : mode === "member-offline" ? t("app.offline.member") : "";
  $("qr").dataset.mode = mode;
  // "a new one appears after a scan" needs the live channel: an offline phone hears of no scan.
  $("code-once").hidden = mode !== "signed";
}

function showCode(mode, content, expiresAt) {
  $("qr").dataset.qrContent = content; // what the QR holds (for the tests; it is on screen anyway)
  $("qr").dataset.for = state.target ? state.target.psn_no : "self";
  setMode(mode);
  state.code = { mode, expiresAt };
  startCountdown();
}

// opts.queue: run once more after a load in progress (the network changed meanwhile).
async function loadCode(opts = {}) {
  if (state.loading) {
    if (opts.queue) state.reloadQueued = true;
    return;
  }
  state.loading = true;
  renderWho();
  try {
    if (!state.session) {
      await showOfflineCode(new ApiError("NETWORK", 0, ""));
      return;
    }
    const body = state.target ? { on_behalf_of: state.target.psn_no } : {};
    let v;
    try {
      if (navigator.onLine === false) throw new ApiError("NETWORK", 0, "");
      v = await authed("POST", "/vouchers?qr=svg", { body });
    } catch (err) {
      if (!(err instanceof ApiError) || err.code !== "NETWORK") throw err;
      await showOfflineCode(err);
      return;
    }
    renderQr(v.qr);
    if ($("problem").dataset.code === "NETWORK") clearProblem(); // the network is back
    delete $("qr").dataset.qrVersion;
    showCode("signed", v.qr_content, Date.now() + v.expires_in * 1000);
    renderClock();
    if (!state.target) checkOffline();
    else offline.saveClock(serverClock()).catch(() => {});
  } finally {
    state.loading = false;
    if (state.reloadQueued) {
      state.reloadQueued = false;
      loadCode().catch(fail);
    }
  }
}

// No network: my own code is made here from the stored key; a family member's code needs the network
// (the binding is checked when the code is made), so none is shown for a member.
async function showOfflineCode(networkError) {
  if (state.target) {
    $("qr").replaceChildren();
    delete $("qr").dataset.qrContent;
    setMode("member-offline");
    state.code = null;
    stopCountdown();
    $("countdown").textContent = "";
    return;
  }
  const rec = state.session
    ? await offline.stored(state.session.psn, deviceId()).catch(() => null)
    : state.offlineOnly;
  if (!rec) throw networkError; // never enrolled on this device: nothing to show
  // The server's time: this phone's clock + the offset last seen in a Date header (fresh only).
  const offset = offline.offsetMs(rec, serverClock());
  renderClock(offset);
  const c = await offline.nextCode(rec, offset);
  $("qr").dataset.qrVersion = String(offline.drawQr($("qr"), c.code));
  showCode("offline", c.code, c.endsAt);
}

// Once per page (and again after a change): make sure this device holds an active offline credential,
// unless the person turned offline codes off here.
function checkOffline() {
  if (state.offlineReady || localStorage.getItem(OFFLINE_OFF) === "1" || !state.session) return state.offlineReady;
  state.offlineReady = offline.ensure(authed, state.session.psn, deviceId(), offlineLabel(), serverClock()).then(
    async (rec) => {
      document.body.dataset.offline = "on";
      await offline.saveClock(serverClock());
      return rec;
    },
    (err) => {
      state.offlineReady = null; // try again with the next code
      console.warn("offline credential", err && (err.code || err.name));
      return null;
    },
  );
  return state.offlineReady;
}

function offlineLabel() {
  return { nameMasked: state.session.nameMasked || "" };
}

// The phone's clock against the server's (the last Date header): a warning beyond 30 s, since codes
// made offline are then corrected by that offset, and signed codes' countdowns may look odd.
function renderClock(known) {
  const c = serverClock();
  const offset = known !== undefined ? known : c ? c.offsetMs : 0;
  const el = $("clock");
  el.dataset.offsetMs = String(Math.round(offset));
  el.hidden = Math.abs(offset) <= offline.CLOCK_WARN_MS;
  const s = Math.round(Math.abs(offset) / 1000);
  el.textContent = el.hidden
    ? ""
    : t(offset > 0 ? "app.clock.slow" : "app.clock.fast", { m: Math.floor(s / 60), s: s % 60 });
}

function forgetOffline() {
  state.offlineReady = null;
  document.body.dataset.offline = "off";
  return offline.forget().catch(() => {});
}

function secondsLeft() {
  return state.code ? Math.max(0, Math.round((state.code.expiresAt - Date.now()) / 1000)) : 0;
}

function tick() {
  const s = secondsLeft();
  const isOffline = state.code && state.code.mode === "offline";
  // An offline code is replaced when its 30 s step ends (the service accepts it one step longer).
  $("countdown").textContent = isOffline
    ? t("app.offline.next", { s })
    : s > 0
      ? t("app.code.valid", { s })
      : t("app.code.expired");
  $("countdown").dataset.seconds = String(s);
  if (s <= (isOffline ? 0 : REFRESH_BEFORE_S) && document.visibilityState === "visible" && state.screen === "code") {
    loadCode().catch(fail);
  }
}

function startCountdown() {
  stopCountdown();
  tick();
  state.timer = setInterval(tick, 1000);
}

function stopCountdown() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
}

function onVisible() {
  // Back on the page: a code that is about to expire (or did, while hidden) is replaced at once.
  if (document.visibilityState !== "visible" || state.screen !== "code") return;
  if (!state.session && !state.offlineOnly) return;
  if (secondsLeft() < 20) loadCode().catch(fail);
}

// ------------------------------------------------------------------ live results (long polling)

function stopPolling() {
  if (state.poll) state.poll.abort();
  state.poll = null;
}

function startPolling() {
  stopPolling();
  const ctl = new AbortController();
  state.poll = ctl;
  pollLoop(ctl).catch(() => {});
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const h = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(h);
      resolve();
    });
  });

async function pollLoop(ctl) {
  let failures = 0;
  while (!ctl.signal.aborted && state.session) {
    try {
      const q = state.cursor ? `?after=${encodeURIComponent(state.cursor)}&wait=${WAIT_S}` : "?wait=0";
      const page = await authed("GET", "/events" + q, { signal: ctl.signal });
      if (ctl.signal.aborted) return;
      failures = 0;
      document.body.dataset.live = "on";
      state.cursor = page.next;
      for (const ev of page.events) onEvent(ev);
    } catch (err) {
      if (ctl.signal.aborted || (err && err.name === "AbortError")) return;
      failures += 1;
      document.body.dataset.live = "retrying";
      // Backoff with jitter: 1 s, 2 s, 4 s … at most 30 s; the cursor makes a retry lose nothing.
      const delay = Math.min(30_000, 1000 * 2 ** Math.min(failures - 1, 5)) * (0.75 + Math.random() / 2);
      await sleep(delay, ctl.signal);
    }
  }
}

function institutionName(inst) {
  if (!inst) return "";
  return typeof inst === "string" ? inst : inst.name || "";
}

function onEvent(ev) {
  const d = ev.data || {};
  const box = $("live");
  if (ev.kind === "scan") {
    const ok = d.result === "accepted";
    box.dataset.result = ok ? "accepted" : "refused";
    $("live-title").textContent = ok ? t("app.result.accepted") : t("app.result.refused");
    $("live-where").textContent = t("app.result.where", {
      institution: institutionName(d.institution),
      business: businessName(d.business_type),
    });
    $("live-detail").textContent = ok ? "" : problemText({ code: d.code });
    box.dataset.code = d.code || "";
    // The code is used up by any scan: show a fresh one at once.
    if (state.screen === "code") loadCode().catch(fail);
  } else if (ev.kind === "payment") {
    const refunded = d.status === "refunded" || d.status === "partially_refunded";
    box.dataset.result = refunded ? "refunded" : "paid";
    $("live-title").textContent = refunded ? t("app.result.refunded") : t("app.result.paid", { total: yuan(d.total_fen) });
    $("live-where").textContent = t("app.result.split", {
      account: yuan(d.account_pay_fen),
      mutual: yuan(d.mutual_aid_pay_fen),
      cash: yuan(d.cash_pay_fen),
    });
    $("live-detail").textContent = d.pay_order_id ? "№ " + d.pay_order_id : "";
  } else {
    return;
  }
  box.dataset.kind = ev.kind;
  box.dataset.eventId = ev.id;
  box.hidden = false;
  box.scrollIntoView({ block: "nearest" });
}

// ------------------------------------------------------------------ history, account

function li(...parts) {
  const el = document.createElement("li");
  for (const p of parts) {
    if (p === null || p === undefined || p === "") continue;
    const line = document.createElement("div");
    if (typeof p === "string") line.textContent = p;
    else line.append(p);
    el.append(line);
  }
  return el;
}

function usageItem(u) {
  const ok = u.result === "accepted";
  const head = document.createElement("div");
  head.className = "row";
  const where = document.createElement("strong");
  where.textContent = u.institution ? u.institution.name : "";
  const res = document.createElement("span");
  res.textContent = ok ? t("result.accepted") : t("result.refused");
  res.dataset.result = u.result;
  head.append(where, res);
  const item = li(
    head,
    `${when(u.at)} · ${businessName(u.business_type)}`,
    ok ? "" : problemText({ code: u.code }),
    u.acted_by ? t("app.history.by", { psn: u.acted_by }) : "",
  );
  item.dataset.result = u.result;
  if (u.acted_by) item.dataset.actedBy = u.acted_by;
  return item;
}

async function loadHistory(more = false) {
  const q = new URLSearchParams({ limit: "20" });
  if (state.target) q.set("psn_no", state.target.psn_no);
  if (more && state.usageCursor) q.set("cursor", state.usageCursor);
  const page = await authed("GET", "/vouchers/usage?" + q);
  const list = $("usage-list");
  if (!more) list.replaceChildren();
  for (const u of page.items) list.append(usageItem(u));
  state.usageCursor = page.next_cursor;
  $("usage-more").hidden = !page.next_cursor;
  $("usage-empty").hidden = list.children.length > 0;
}

async function loadAccount() {
  const q = state.target ? "?on_behalf_of=" + encodeURIComponent(state.target.psn_no) : "";
  const acct = await authed("GET", "/accounts/me" + q);
  $("balance").textContent = yuan(acct.balance_fen);
  const page = await authed("GET", "/accounts/me/entries" + (q ? q + "&" : "?") + "limit=50");
  const list = $("entries");
  list.replaceChildren();
  for (const e of page.items) {
    const row = document.createElement("div");
    row.className = "row";
    const kind = document.createElement("span");
    kind.textContent = t("entry." + e.kind) === "entry." + e.kind ? e.kind : t("entry." + e.kind);
    const amount = document.createElement("strong");
    amount.className = "amount";
    amount.textContent = (e.amount_fen > 0 ? "+" : "") + yuan(e.amount_fen);
    row.append(kind, amount);
    list.append(li(row, when(e.created_at)));
  }
  $("entries-empty").hidden = page.items.length > 0;
}

// ------------------------------------------------------------------ family

function relName(rel) {
  const key = "rel." + rel;
  return t(key) === key ? rel : t(key);
}

function button(label, cls, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  if (cls) b.className = cls;
  b.addEventListener("click", () => busy(b, onClick));
  return b;
}

async function loadFamily() {
  const { bindings } = await authed("GET", "/family/bindings");
  const pending = $("family-pending");
  const members = $("family-members");
  const binders = $("family-binders");
  pending.replaceChildren();
  members.replaceChildren();
  binders.replaceChildren();
  for (const b of bindings) {
    if (b.role === "member" && b.status === "pending") {
      const card = document.createElement("div");
      card.className = "card";
      card.dataset.binding = b.binding_id;
      const h = document.createElement("h3");
      h.textContent = t("app.family.pending");
      const p = document.createElement("p");
      p.textContent = t("app.family.pending.text", { name: b.binder.name_masked, rel: relName(b.relationship) });
      const actions = document.createElement("div");
      actions.className = "actions";
      actions.append(
        button(t("app.family.approve"), "primary", async () => {
          await authed("POST", `/family/bindings/${encodeURIComponent(b.binding_id)}/approve`);
          await loadFamily();
        }),
        button(t("app.family.decline"), "danger", async () => {
          await authed("POST", `/family/bindings/${encodeURIComponent(b.binding_id)}/decline`);
          await loadFamily();
        }),
      );
      card.append(h, p, actions);
      pending.append(card);
    } else if (b.role === "binder" && (b.status === "active" || b.status === "pending")) {
      const item = li(`${b.member.name_masked} · ${relName(b.relationship)} · ${t("status." + b.status)}`);
      item.dataset.member = b.member.psn_no;
      if (b.status === "active") {
        item.append(
          button(t("app.family.show", { name: b.member.name_masked }), "primary", async () => {
            state.target = { psn_no: b.member.psn_no, name_masked: b.member.name_masked };
            show("code");
          }),
        );
      } else {
        item.append(li(t("app.family.waiting")));
      }
      members.append(item);
    } else if (b.role === "member" && b.status === "active") {
      binders.append(li(`${b.binder.name_masked} · ${relName(b.relationship)} · ${t("status.active")}`));
    }
  }
  if (!members.children.length) members.append(li(t("app.family.empty")));
  if (!binders.children.length) binders.append(li(t("app.family.empty")));
  // What relatives did for me: scans of my code shown by someone else.
  const usage = await authed("GET", "/vouchers/usage?limit=100");
  const acted = $("family-acted");
  acted.replaceChildren();
  for (const u of usage.items.filter((x) => x.acted_by)) acted.append(usageItem(u));
  if (!acted.children.length) acted.append(li(t("app.family.acted.none")));
}

// ------------------------------------------------------------------ more

async function payAuthorization() {
  const body = { purpose: "online_otc" };
  if (state.target) body.on_behalf_of = state.target.psn_no;
  const grant = await authed("POST", "/pay-authorizations", { body });
  const out = $("payauth-result");
  out.textContent = t("app.more.payauth.code", { code: grant.pay_auth_no }) + " · " + when(grant.expires_at);
  out.dataset.payAuthNo = grant.pay_auth_no;
  out.hidden = false;
}

async function revokeAll() {
  await authed("POST", "/vouchers/revocations");
  await forgetOffline(); // the service ended this device's offline credential too
  $("revoke-confirm").hidden = true;
  $("revoke-result").textContent = t("app.more.lost.done");
  $("revoke-result").hidden = false;
  state.code = null;
}

async function loadMore() {
  await state.offlineReady;
  const rec = state.session ? await offline.stored(state.session.psn, deviceId()).catch(() => null) : null;
  const el = $("offline-state");
  el.textContent = rec ? t("app.offline.state.on", { id: rec.credentialId.slice(-4) }) : t("app.offline.state.off");
  el.dataset.state = rec ? "on" : "off";
  document.body.dataset.offline = el.dataset.state;
  $("offline-on").hidden = Boolean(rec);
  $("offline-off").hidden = !rec;
}

async function offlineOff() {
  localStorage.setItem(OFFLINE_OFF, "1");
  await state.offlineReady;
  await offline.end(authed);
  state.offlineReady = null;
  await loadMore();
}

async function offlineOn() {
  localStorage.removeItem(OFFLINE_OFF);
  const rec = await offline.ensure(authed, state.session.psn, deviceId(), offlineLabel(), serverClock());
  state.offlineReady = Promise.resolve(rec);
  await loadMore();
}

async function logout() {
  try {
    await offline.end(authed); // no offline codes for a person who logged out here
  } catch {
    /* the key is forgotten below in any case */
  }
  await forgetOffline();
  try {
    await authed("DELETE", "/sessions/current");
  } catch {
    /* ending the session locally is what matters */
  }
  stopPolling();
  saveSession(null);
  state.target = null;
  state.offlineOnly = null;
  show("activate");
}

// ------------------------------------------------------------------ start

function bind() {
  $("lang").addEventListener("click", () => {
    setLang(lang() === "en" ? "zh-CN" : "en");
    applyI18n();
    if (state.screen) show(state.screen);
  });
  $("activate-form").addEventListener("submit", activate);
  $("refresh").addEventListener("click", () => busy($("refresh"), loadCode));
  $("offline-login").addEventListener("click", () => {
    state.offlineOnly = null;
    show("activate");
  });
  $("back-to-me").addEventListener("click", () => {
    state.target = null;
    show("code");
  });
  $("live-ok").addEventListener("click", () => {
    $("live").hidden = true;
  });
  $("usage-more").addEventListener("click", () => busy($("usage-more"), () => loadHistory(true)));
  $("payauth").addEventListener("click", () => busy($("payauth"), payAuthorization));
  $("revoke").addEventListener("click", () => {
    $("revoke-confirm").hidden = false;
  });
  $("revoke-yes").addEventListener("click", () => busy($("revoke-yes"), revokeAll));
  $("logout").addEventListener("click", () => busy($("logout"), logout));
  $("offline-on").addEventListener("click", () => busy($("offline-on"), offlineOn));
  $("offline-off").addEventListener("click", () => busy($("offline-off"), offlineOff));
  // The network went: my code from the stored key at once. It came back: signed codes and live results.
  window.addEventListener("offline", () => {
    if (state.session && state.screen === "code") loadCode({ queue: true }).catch(fail);
  });
  window.addEventListener("online", () => {
    if (!state.session) return;
    startPolling();
    if (state.screen === "code") loadCode({ queue: true }).catch(fail);
  });
  for (const b of document.querySelectorAll("#tabs button")) {
    b.addEventListener("click", () => {
      clearProblem();
      if (b.dataset.screen === "code" && state.screen !== "code") state.code = null;
      show(b.dataset.screen);
    });
  }
  document.addEventListener("visibilitychange", onVisible);
}

// The service worker keeps the app shell so that the page opens with no network (sw.js); never /api/.
async function registerWorker() {
  if (!("serviceWorker" in navigator)) return;
  try {
    await navigator.serviceWorker.register("/app/sw.js", { scope: "/app/" });
    document.body.dataset.worker = "registered";
  } catch (err) {
    console.warn("service worker", err && err.name);
  }
}

// Whether the service answers at all: navigator.onLine only says a network interface is up (a basement's
// weak cell, a captive portal, a dead uplink still say "online"). One GET /healthz, never cached by the
// service worker, that must answer within PROBE_MS.
const PROBE_MS = 3000;
async function serviceReachable() {
  if (navigator.onLine === false) return false;
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), PROBE_MS);
  try {
    const r = await fetch("/healthz", { cache: "no-store", signal: ctl.signal });
    // a captive portal answers 200 with its own page: only the service's own answer counts
    return r.ok && (await r.json()).status === "ok";
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

// No session and no network (the tab was closed, the person opens the app in the basement): the code of
// the person this device's offline credential was made for, labelled offline; log in once back online.
async function startWithoutSession() {
  // the probe only when there is an offline code to show (else the activation screen at once)
  const stored = localStorage.getItem(OFFLINE_OFF) !== "1" ? await offline.storedAny().catch(() => null) : null;
  const rec = stored && !(await serviceReachable()) ? stored : null;
  if (!rec || state.session) {
    show("activate");
    return;
  }
  state.offlineOnly = rec;
  show("code");
  $("tabs").hidden = true; // the other screens need the network and a session
  $("offline-login").hidden = false;
}

async function start() {
  applyI18n();
  bind();
  registerWorker();
  if (state.session) {
    startPolling();
    show("code");
  } else {
    await startWithoutSession();
  }
  document.body.dataset.ready = "yes";
}

start();
