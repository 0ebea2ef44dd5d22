// Plain-language texts for the problem codes a person or a cashier meets, saying what to do next.
// A code not listed shows the service's own `detail` (already in the page's language); raw JSON never.
import { lang } from "./i18n.js";

const TEXTS = {
  NETWORK: ["网络连接失败，请检查网络后重试。", "No connection. Check the network and try again."],
  SERVER: ["服务暂时出现问题，请稍后再试。", "The service has a problem right now. Try again shortly."],
  UNKNOWN: ["操作没有成功，请重试。", "That did not work. Please try again."],
  VOUCHER_MALFORMED: ["扫到的不是医保码，请重新扫描。", "That is not a medical insurance code. Scan again."],
  VOUCHER_SIGNATURE_INVALID: ["这个医保码无法识别，请让顾客刷新后重扫。", "This code is not recognised. Ask for a new code."],
  VOUCHER_EXPIRED: ["医保码已过期，请刷新二维码后再扫。", "The code has expired. Show a new code and scan again."],
  VOUCHER_ALREADY_USED: ["这个医保码已经用过了，请刷新二维码后再扫。", "This code was already used. Show a new code and scan again."],
  VOUCHER_REVOKED: ["医保码已作废（可能在其他手机上挂失），请重新激活或刷新。", "The code was voided (lost phone). Activate again or show a new code."],
  PERSON_SUSPENDED: ["参保状态已暂停，请联系医保经办机构。", "The insurance is suspended. Contact the insurance office."],
  REGION_NOT_COVERED: ["参保地不在本地，且没有异地就医备案，请先办理备案。", "Insured elsewhere with no cross-region filing for here. File one first."],
  SCOPE_NOT_ALLOWED: ["该业务需要职工医保个人账户，居民医保不能使用。", "This needs employee insurance with a personal account."],
  INSTITUTION_NOT_DESIGNATED: ["本机构没有开通这项医保业务。", "This institution is not designated for this business type."],
  REPLAY_STORE_UNAVAILABLE: ["医保系统暂时无法核验，请稍后重试。", "The code cannot be checked right now. Try again shortly."],
  INSTITUTION_AUTH_FAILED: ["机构密钥不正确或电脑时间不准，请检查密钥 ID、密钥和时间。", "The key id or secret is wrong, or this computer's clock is off."],
  INSTITUTION_DISABLED: ["本机构已停用，请联系经办机构。", "This institution is disabled. Contact the insurance agency."],
  AUTHENTICATION_REQUIRED: ["请先激活医保码。", "Please activate first."],
  TOKEN_INVALID: ["登录已过期，请重新激活。", "Your login expired. Please activate again."],
  REFRESH_TOKEN_INVALID: ["登录已过期，请重新激活。", "Your login expired. Please activate again."],
  REFRESH_TOKEN_REUSED: ["为了安全，本次登录已全部退出，请重新激活。", "For your safety every session was ended. Please activate again."],
  IDENTITY_PROOF_INVALID: ["刷脸核验没有通过或已超时，请重试。", "The face check failed or timed out. Try again."],
  IDENTITY_MISMATCH: ["姓名或身份证号与参保登记不一致，请核对。", "The name or ID number does not match the insurance record."],
  PERSON_NOT_FOUND: ["没有找到参保信息，请核对姓名和身份证号。", "No insurance record found. Check the name and ID number."],
  ID_NUMBER_INVALID: ["身份证号格式不对，请核对 18 位号码。", "The ID number is not valid. Check all 18 characters."],
  VALIDATION_FAILED: ["填写的内容有误，请检查后重试。", "Some entries are not valid. Check them and try again."],
  SANDBOX_DISABLED: ["本系统未开放模拟刷脸，请使用正式的刷脸核验。", "Simulated face checks are off on this system."],
  NOT_PERMITTED: ["您没有这项操作的权限。", "You are not allowed to do this."],
  BINDING_NOT_ACTIVE: ["家人绑定尚未生效或已解除。", "The family binding is not active."],
  FAMILY_LIMIT_REACHED: ["最多只能绑定 5 位家人。", "You can bind at most 5 family members."],
  INSUFFICIENT_BALANCE: ["个人账户余额不足。", "The personal account balance is too low."],
  NO_PERSONAL_ACCOUNT: ["该参保人没有个人账户（居民医保）。", "This person has no personal account (resident insurance)."],
  ITEM_NOT_ELIGIBLE: ["有药品不能用医保支付（处方药需凭处方）。", "An item cannot be paid by insurance (prescription drug)."],
  EC_TOKEN_INVALID: ["核验结果已过期，请重新扫码。", "The verification has expired. Scan the code again."],
  TRACE_CODE_ALREADY_SETTLED: ["有追溯码已经结算过（可能是假药或重复销售），请核对药盒。", "A traceability code was already settled: check the box (fake or resold?)."],
  TRACE_CODE_MALFORMED: ["追溯码格式不对，请重新扫描药盒。", "A traceability code is not valid. Scan the box again."],
  TRACE_CODE_DUPLICATE: ["同一个追溯码扫了两次。", "The same traceability code was scanned twice."],
  TRACE_CODE_COUNT_MISMATCH: ["追溯码数量要和药品盒数一致。", "Scan one traceability code per box."],
  ORDER_STATE_CONFLICT: ["订单状态已变化，不能进行此操作。", "The order's state does not allow this."],
  ORDER_EXPIRED: ["订单已超时，请重新下单。", "The order timed out. Place it again."],
  ORDER_NOT_FOUND: ["找不到该订单。", "Order not found."],
  MERCHANT_ORDER_EXISTS: ["订单号重复，请重新下单。", "This order number was used already."],
  REFUND_EXCEEDS_PAID: ["退款金额超过已付金额。", "The refund is more than what was paid."],
  IDEMPOTENCY_KEY_IN_USE: ["上一次请求还在处理中，请稍候。", "The previous attempt is still running. Wait a moment."],
  IDEMPOTENCY_KEY_REUSED: ["请求内容变了，请重新操作。", "The request changed. Start the action again."],
  SUPERVISION_BLOCKED: ["医保智能监控拦截了这笔交易。", "Fund supervision blocked this sale."],
  CAMERA: ["无法打开摄像头，请改用扫码枪或手动输入。", "The camera could not be opened. Use the scanner or type the code."],
  EVENTS_UNAVAILABLE: ["实时结果暂时连不上，正在重试。", "Live results are not reachable; retrying."],
  DATABASE_UNAVAILABLE: ["服务暂时不可用，请稍后重试。", "The service is unavailable. Try again shortly."],
};

// The text to show for an ApiError (or any error): never the raw body.
export function problemText(err) {
  const code = (err && err.code) || "UNKNOWN";
  const entry = TEXTS[code];
  if (entry) return entry[lang() === "en" ? 1 : 0];
  if (err && err.detail) return err.detail;
  return TEXTS.UNKNOWN[lang() === "en" ? 1 : 0];
}

// A supervision refusal's violations in plain words, one per rule broken (the evidence the service gives;
// nothing of the person in it): what the pharmacist tells the customer.
const VIOLATION = {
  quantity_limit: [
    "规则 {rule_id}：{drug_code} 近 {window_days} 天已购 {counted_quantity}，本单 {this_order_quantity}，上限 {max_quantity}。",
    "Rule {rule_id}: {drug_code}, {counted_quantity} bought in the last {window_days} days and {this_order_quantity} in this order; the limit is {max_quantity}.",
  ],
  repeat_purchase: [
    "规则 {rule_id}：{drug_code} 近 {window_days} 天已在 {institutions} 家机构购买，上限 {max_institutions} 家。",
    "Rule {rule_id}: {drug_code} bought at {institutions} institutions in the last {window_days} days; the limit is {max_institutions}.",
  ],
  identity_velocity: [
    "规则 {rule_id}：{window_minutes} 分钟内在 {prefectures} 个地市使用，上限 {max_prefectures} 个。",
    "Rule {rule_id}: used in {prefectures} prefectures within {window_minutes} minutes; the limit is {max_prefectures}.",
  ],
};

export function violationText(v) {
  const entry = v && Object.hasOwn(VIOLATION, v.kind) ? VIOLATION[v.kind] : null;
  const vars = { rule_id: v && v.rule_id, ...((v && v.evidence) || {}) };
  if (!entry) return `${vars.rule_id || "?"} ${(v && v.kind) || ""}`.trim();
  return entry[lang() === "en" ? 1 : 0].replace(/\{(\w+)\}/g, (_, k) => (vars[k] === undefined ? "?" : String(vars[k])));
}

// Show the text and the code (small, for the helpdesk) in an element; a supervision refusal's rules too.
export function showProblem(el, err) {
  el.replaceChildren();
  const text = document.createElement("span");
  text.className = "problem-text";
  text.textContent = "⚠ " + problemText(err);
  const code = document.createElement("span");
  code.className = "problem-code";
  code.textContent = (err && err.code) || "UNKNOWN";
  el.append(text, " ", code);
  const violations = (err && err.extra && Array.isArray(err.extra.violations) && err.extra.violations) || [];
  if (violations.length) {
    const list = document.createElement("ul");
    list.className = "violations";
    for (const v of violations) {
      const li = document.createElement("li");
      li.dataset.rule = String(v.rule_id || "");
      li.dataset.kind = String(v.kind || "");
      li.textContent = violationText(v);
      list.append(li);
    }
    el.append(list);
  }
  el.dataset.code = (err && err.code) || "UNKNOWN";
  el.hidden = false;
}
