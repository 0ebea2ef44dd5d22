// /counter/: the pharmacy or hospital counter. The institution's key id and secret are entered once and
// kept in this tab's sessionStorage; every request is signed here with WebCrypto (shared/sign.js) and the
// secret never leaves the page. A production terminal keeps the secret in its own system instead.
import { api, ApiError } from "./shared/api.js";
import { applyI18n, businessName, lang, setLang, t, when, yuan } from "./shared/i18n.js";
import { problemText, showProblem } from "./shared/problems.js";
import { randomHex } from "./shared/sign.js";

const $ = (id) => document.getElementById(id);
const CREDS = "yb.counter.creds";
const BT = "yb.counter.bt"; // the business type, chosen once (not a secret)
const DEVICE = "yb.counter.device";

const state = {
  creds: load(),
  institution: null,
  verification: null, // the accepted answer: {ec_token, person, business_type}
  order: null,
  orderKey: null, // Idempotency-Key of the order being placed (kept for a retry of the same order)
  payKey: null,
  refundKey: null,
  lines: [],
  stream: null,
};

function load() {
  try {
    return JSON.parse(sessionStorage.getItem(CREDS) || "null");
  } catch {
    return null;
  }
}

function deviceId() {
  let id = localStorage.getItem(DEVICE);
  if (!id) {
    id = "counter-" + randomHex(6);
    localStorage.setItem(DEVICE, id);
  }
  return id;
}

const idemKey = () => (crypto.randomUUID ? crypto.randomUUID() : randomHex(16));

function signed(method, path, options = {}) {
  return api(method, path, { ...options, creds: state.creds });
}

function clearProblem() {
  $("problem").hidden = true;
}

function fail(err) {
  showProblem($("problem"), err);
}

async function busy(button, fn) {
  clearProblem();
  const label = button.textContent;
  button.disabled = true;
  try {
    await fn();
  } catch (err) {
    fail(err);
  } finally {
    button.disabled = false;
    button.textContent = label;
  }
}

function show(name) {
  for (const el of document.querySelectorAll(".screen")) el.hidden = el.id !== "screen-" + name;
  $("signout").hidden = name === "login";
  document.body.dataset.screen = name;
  if (name === "desk") $("scan").focus();
}

function dl(el, pairs) {
  el.replaceChildren();
  for (const [k, v, key] of pairs) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    if (key) dd.dataset.key = key;
    el.append(dt, dd);
  }
}

// ------------------------------------------------------------------ sign in

async function signIn(ev) {
  ev.preventDefault();
  const form = ev.target;
  const creds = {
    keyId: form.elements.key_id.value.trim(),
    secret: form.elements.secret.value,
    operator: form.elements.operator.value.trim() || "OP01",
  };
  await busy(form.querySelector("button"), async () => {
    state.creds = creds;
    try {
      state.institution = await signed("GET", "/institutions/me");
    } catch (err) {
      state.creds = null;
      throw err;
    }
    sessionStorage.setItem(CREDS, JSON.stringify(creds));
    form.elements.secret.value = "";
    enterDesk();
  });
}

function enterDesk() {
  $("who").textContent = state.institution ? state.institution.name : t("counter.as", { key: state.creds.keyId });
  show("desk");
}

function signOut() {
  stopCamera();
  sessionStorage.removeItem(CREDS);
  state.creds = null;
  state.institution = null;
  resetSale();
  $("verdict").hidden = true;
  show("login");
}

// ------------------------------------------------------------------ scanning

async function verify(text) {
  const content = text.trim();
  if (!content) return;
  resetSale();
  const bt = $("bt").value;
  const verdict = $("verdict");
  try {
    const answer = await signed("POST", "/verifications", {
      body: {
        qr_content: content,
        business_type: bt,
        operator_id: state.creds.operator,
        operator_name: state.creds.operator,
        device_id: deviceId(),
        out_biz_no: "S" + Date.now() + randomHex(3),
      },
    });
    state.verification = answer;
    const p = answer.person;
    verdict.dataset.result = "accepted";
    verdict.dataset.code = "";
    $("verdict-title").textContent = `${t("counter.ok")} · ${businessName(answer.business_type)}`;
    dl($("verdict-person"), [
      ["", p.name_masked, "name"],
      [t("counter.person.id"), p.id_number_masked, "id"],
      [t("counter.person.ins"), t("ins." + p.insurance_type), "insurance"],
      [t("counter.person.acct"), p.has_personal_account ? "✓ " + t("yes") : "✗ " + t("no"), "account"],
      [t("counter.person.region"), p.insured_region, "region"],
    ]);
    $("verdict-reason").textContent = "";
    $("sale").hidden = false;
    if (!state.lines.length) addLine();
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    verdict.dataset.result = "refused";
    verdict.dataset.code = err.code;
    $("verdict-title").textContent = t("counter.refused");
    $("verdict-person").replaceChildren();
    $("verdict-reason").textContent = `${problemText(err)} (${err.code})`;
  }
  verdict.hidden = false;
}

function onScan(ev) {
  ev.preventDefault();
  const input = $("scan");
  const text = input.value;
  input.value = "";
  verify(text).catch(fail);
  input.focus();
}

async function startCamera() {
  // Only where the browser offers BarcodeDetector with QR support; a USB scanner needs none of this.
  const detector = new window.BarcodeDetector({ formats: ["qr_code"] });
  const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
  state.stream = stream;
  const video = $("video");
  video.srcObject = stream;
  video.hidden = false;
  await video.play();
  $("camera").textContent = t("counter.camera.stop");
  const loop = async () => {
    if (!state.stream) return;
    try {
      const codes = await detector.detect(video);
      if (codes.length) {
        stopCamera();
        await verify(codes[0].rawValue);
        return;
      }
    } catch {
      /* a frame that could not be read: try the next */
    }
    setTimeout(loop, 250);
  };
  loop();
}

function stopCamera() {
  if (state.stream) for (const track of state.stream.getTracks()) track.stop();
  state.stream = null;
  $("video").hidden = true;
  $("camera").textContent = t("counter.camera");
}

// ------------------------------------------------------------------ sale lines

function yuanToFen(text) {
  const m = /^\s*(\d{1,9})(?:\.(\d{1,2}))?\s*$/.exec(String(text));
  if (!m) return null;
  return Number(m[1]) * 100 + Number((m[2] || "0").padEnd(2, "0"));
}

function addLine() {
  const node = $("line-tpl").content.firstElementChild.cloneNode(true);
  applyI18n(node);
  const line = { el: node, codes: [] };
  state.lines.push(line);
  const trace = node.querySelector("input[name=trace]");
  const count = () => {
    const q = Number(node.querySelector("input[name=quantity]").value) || 0;
    node.querySelector(".trace-count").textContent = t("counter.line.trace.count", { n: line.codes.length, q });
    node.dataset.codes = String(line.codes.length);
  };
  trace.addEventListener("keydown", (ev) => {
    if (ev.key !== "Enter") return;
    ev.preventDefault();
    const code = trace.value.trim();
    trace.value = "";
    if (!code) return;
    if (line.codes.includes(code)) {
      fail(new ApiError("TRACE_CODE_DUPLICATE", 422));
      return;
    }
    line.codes.push(code);
    const li = document.createElement("li");
    li.textContent = code;
    node.querySelector(".codes").append(li);
    count();
  });
  node.querySelector("input[name=quantity]").addEventListener("input", count);
  node.querySelector(".remove").addEventListener("click", () => {
    state.lines = state.lines.filter((l) => l !== line);
    node.remove();
  });
  $("lines").append(node);
  count();
  node.querySelector("input[name=drug_code]").focus();
  return line;
}

function readItems() {
  return state.lines.map((line, i) => {
    const el = line.el;
    const price = yuanToFen(el.querySelector("input[name=price]").value);
    const quantity = Number(el.querySelector("input[name=quantity]").value);
    if (price === null || !Number.isInteger(quantity) || quantity < 1) {
      throw new ApiError("VALIDATION_FAILED", 422, "", { line_no: i + 1 });
    }
    return {
      drug_code: el.querySelector("input[name=drug_code]").value.trim(),
      drug_name: el.querySelector("input[name=drug_name]").value.trim(),
      otc: el.querySelector("input[name=otc]").checked,
      quantity,
      unit_price_fen: price,
      trace_codes: line.codes.slice(),
    };
  });
}

function resetSale() {
  state.verification = null;
  state.order = null;
  state.orderKey = state.payKey = state.refundKey = null;
  state.lines = [];
  $("lines").replaceChildren();
  $("sale").hidden = true;
  $("order").hidden = true;
  $("receipt").hidden = true;
  $("refund-result").hidden = true;
  $("next").hidden = true;
}

// ------------------------------------------------------------------ order, pay, receipt, refund

function splitPairs(o) {
  return [
    [t("counter.receipt.total"), yuan(o.total_fen), "total"],
    [t("counter.receipt.account"), yuan(o.account_pay_fen), "account"],
    [t("counter.receipt.mutual"), yuan(o.mutual_aid_pay_fen), "mutual"],
    [t("counter.receipt.cash"), yuan(o.cash_pay_fen), "cash"],
  ];
}

function showOrder(o) {
  state.order = o;
  $("order").hidden = false;
  $("order").dataset.status = o.status;
  $("order").dataset.payOrderId = o.pay_order_id;
  $("order-status").textContent = t("counter.order.status", { id: o.pay_order_id, status: t("status." + o.status) });
  dl($("order-split"), splitPairs(o));
}

async function createOrder() {
  if (!state.verification) throw new ApiError("EC_TOKEN_INVALID", 422);
  const items = readItems();
  const body = {
    ec_token: state.verification.ec_token,
    merchant_order_no: state.merchantNo || (state.merchantNo = "W" + Date.now() + randomHex(3)),
    items,
    delivery_fee_fen: 0,
  };
  // A retry of the same order (same body) reuses its key, so a lost answer never makes a second order.
  const text = JSON.stringify(body);
  if (!state.orderKey || state.orderBody !== text) state.orderKey = idemKey();
  state.orderBody = text;
  const o = await signed("POST", "/payment-orders", { body, headers: { "Idempotency-Key": state.orderKey } });
  showOrder(o);
  $("sale").hidden = true;
}

async function payOrder() {
  if (!state.payKey) state.payKey = idemKey();
  const id = encodeURIComponent(state.order.pay_order_id);
  const o = await signed("POST", `/payment-orders/${id}/pay`, { headers: { "Idempotency-Key": state.payKey } });
  showOrder(o);
  $("order").hidden = true;
  renderReceipt(o);
  state.merchantNo = null;
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.append(td);
}

function renderReceipt(o) {
  const items = JSON.parse(state.orderBody).items;
  const p = state.verification.person;
  $("receipt-head").textContent = `${state.institution ? state.institution.name : state.creds.keyId} · ${when(
    o.paid_at || o.created_at,
  )} · № ${o.pay_order_id} · ${p.name_masked}`;
  const table = $("receipt-lines");
  table.replaceChildren();
  for (const it of items) {
    const tr = document.createElement("tr");
    cell(tr, `${it.drug_name} (${it.drug_code})${it.otc ? " OTC" : ""}`);
    cell(tr, `× ${it.quantity}`, "num");
    cell(tr, yuan(it.unit_price_fen * it.quantity), "num");
    table.append(tr);
    for (const c of it.trace_codes) {
      const tc = document.createElement("tr");
      cell(tc, "  " + c, "mono muted");
      cell(tc, "");
      cell(tc, "");
      table.append(tc);
    }
  }
  dl($("receipt-split"), splitPairs(o));
  $("receipt-foot").textContent = `${t("status." + o.status)} · ${businessName(state.verification.business_type)}`;
  $("receipt").hidden = false;
  $("receipt").dataset.status = o.status;
  $("next").hidden = false;
}

async function refund() {
  if (!state.refundKey) state.refundKey = idemKey();
  const id = encodeURIComponent(state.order.pay_order_id);
  const r = await signed("POST", `/payment-orders/${id}/refunds`, {
    body: { reason: t("counter.refund.reason.default") },
    headers: { "Idempotency-Key": state.refundKey },
  });
  const out = $("refund-result");
  out.textContent = t("counter.refund.done", { account: yuan(r.account_refund_fen), cash: yuan(r.cash_refund_fen) });
  out.dataset.status = r.status;
  out.dataset.account = String(r.account_refund_fen);
  out.dataset.cash = String(r.cash_refund_fen);
  out.hidden = false;
  $("refund").disabled = true;
  $("receipt").dataset.status = "refunded";
}

// ------------------------------------------------------------------ statement

function beijingToday() {
  // en-CA formats as YYYY-MM-DD; the statement day is a Beijing calendar day.
  return new Date().toLocaleDateString("en-CA", { timeZone: "Asia/Shanghai" });
}

async function statement() {
  const s = await signed("GET", "/statements?date=" + beijingToday());
  const box = $("statement");
  box.replaceChildren();
  const lines = [
    s.date,
    t("counter.statement.payments", {
      n: s.payments.count,
      total: yuan(s.payments.total_fen),
      ins: yuan(s.payments.account_fen + s.payments.mutual_aid_fen),
      cash: yuan(s.payments.cash_fen),
    }),
    t("counter.statement.refunds", { n: s.refunds.count, total: yuan(s.refunds.total_fen) }),
    t("counter.statement.net", { total: yuan(s.net.total_fen) }),
    s.reconciled ? t("counter.statement.reconciled") : t("counter.statement.unreconciled"),
  ];
  for (const text of lines) {
    const p = document.createElement("p");
    p.textContent = text;
    box.append(p);
  }
  box.dataset.payments = String(s.payments.count);
  box.dataset.reconciled = String(s.reconciled);
  box.hidden = false;
}

// ------------------------------------------------------------------ start

function labelBusinessTypes() {
  for (const opt of $("bt").options) opt.textContent = `${businessName(opt.value)} (${opt.value})`;
}

function bind() {
  $("lang").addEventListener("click", () => {
    setLang(lang() === "en" ? "zh-CN" : "en");
    applyI18n();
    labelBusinessTypes();
  });
  $("login-form").addEventListener("submit", signIn);
  $("signout").addEventListener("click", signOut);
  $("scan-form").addEventListener("submit", onScan);
  $("bt").value = localStorage.getItem(BT) || "02121";
  $("bt").addEventListener("change", () => localStorage.setItem(BT, $("bt").value));
  $("add-line").addEventListener("click", () => addLine());
  $("create").addEventListener("click", () => busy($("create"), createOrder));
  $("pay").addEventListener("click", () => busy($("pay"), payOrder));
  $("print").addEventListener("click", () => window.print());
  $("refund").addEventListener("click", () => busy($("refund"), refund));
  $("next").addEventListener("click", () => {
    resetSale();
    $("refund").disabled = false;
    $("verdict").hidden = true;
    $("scan").focus();
  });
  $("statement-go").addEventListener("click", () => busy($("statement-go"), statement));
  if ("BarcodeDetector" in window && navigator.mediaDevices) {
    $("camera").hidden = false;
    $("camera").addEventListener("click", () => {
      if (state.stream) stopCamera();
      else startCamera().catch((err) => fail(new ApiError(err && err.name ? "CAMERA" : "UNKNOWN", 0, String(err))));
    });
  }
}

applyI18n();
labelBusinessTypes();
bind();
if (state.creds) {
  signed("GET", "/institutions/me")
    .then((inst) => {
      state.institution = inst;
      enterDesk();
    })
    .catch((err) => {
      fail(err);
      show("login");
    });
} else {
  show("login");
}
document.body.dataset.ready = "yes";
