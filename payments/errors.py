"""The payments error codes (status, English, Chinese), registered once at import.

Codes shared with other domains (NOT_PERMITTED, PERSON_SUSPENDED, PERSON_NOT_FOUND, NOT_FOUND, ...)
live in yibao/errors.py and are not registered here.
"""

from __future__ import annotations

from yibao.errors import register_messages, register_variant

CODES: dict[str, tuple[int, str, str]] = {
    "REFUND_TOO_SMALL_FOR_CODES": (
        422,
        "The refunds do not pay back the units whose traceability codes would be released.",
        "退款金额不足以覆盖所释放追溯码对应药品的金额。",
    ),
    "ORDER_EXPIRED": (
        409,
        "The order was placed more than 30 minutes ago and can no longer be paid; place a new one.",
        "订单已超过30分钟支付时限，不能再支付；请撤销后重新下单。",
    ),
    "INSUFFICIENT_BALANCE": (
        409,
        "The personal account cannot cover the drugs and account-only payment was requested.",
        "个人账户余额不足（已要求仅用个人账户支付）。",
    ),
    "ITEM_NOT_ELIGIBLE": (
        422,
        "An item is not eligible for this payment (online purchase covers OTC drugs only).",
        "存在不可医保支付的药品（线上仅限非处方药）。",
    ),
    "TRACE_CODE_ALREADY_SETTLED": (
        409,
        "A drug traceability code was already settled.",
        "药品追溯码已被结算过。",
    ),
    "TRACE_CODE_MALFORMED": (
        422,
        "A traceability code is neither 20 digits nor a GS1 element string.",
        "药品追溯码格式不正确。",
    ),
    "TRACE_CODE_DUPLICATE": (422, "The same traceability code appears twice.", "同一追溯码重复出现。"),
    "TRACE_CODE_COUNT_MISMATCH": (
        422,
        "A boxed drug needs one traceability code per unit.",
        "追溯码数量与药品数量不一致。",
    ),
    "TRACE_CODE_NOT_IN_ORDER": (
        422,
        "The traceability code was not settled by this order.",
        "该追溯码不属于本订单的已结算药品。",
    ),
    "ORDER_STATE_CONFLICT": (409, "The order's state does not allow this.", "订单当前状态不允许该操作。"),
    "ORDER_NOT_FOUND": (404, "No such payment order.", "支付订单不存在。"),
    "MERCHANT_ORDER_EXISTS": (
        409,
        "This merchant_order_no was already used by this institution.",
        "商户订单号已存在。",
    ),
    "REFUND_EXCEEDS_PAID": (409, "The refund exceeds what is left to refund.", "退款金额超过可退金额。"),
    "AMOUNT_TOO_LARGE": (422, "An amount exceeds 2^53 - 1 fen.", "金额超出允许范围。"),
    "PAY_AUTH_INVALID": (
        422,
        "The pay_auth_no is unknown or expired.",
        "支付授权码无效或已过期。",
    ),
    "PAY_AUTH_ALREADY_USED": (
        409,
        "The pay authorization (or ec_token) was already used for an order.",
        "支付授权已被使用。",
    ),
    "PAY_AUTH_PURPOSE_MISMATCH": (
        422,
        "The pay authorization was given for another purpose.",
        "支付授权用途不符。",
    ),
    "BUSINESS_TYPE_NOT_PAYABLE": (
        422,
        "The ec_token's business type does not allow payment (02121 or 01301 needed).",
        "该 ec_token 的业务类型不能用于支付（需 02121 或 01301）。",
    ),
    "NO_PERSONAL_ACCOUNT": (422, "The person has no personal account.", "该参保人没有个人账户。"),
    "CONTRIBUTION_CONFLICT": (
        409,
        "A contribution for this person and year was already credited with another amount.",
        "该参保人该年度已记入不同金额。",
    ),
    "IDEMPOTENCY_KEY_REQUIRED": (
        400,
        "Send an Idempotency-Key header (1-255 visible ASCII characters).",
        "请提供 Idempotency-Key 请求头（1-255 个可见 ASCII 字符）。",
    ),
    "IDEMPOTENCY_KEY_REUSED": (
        422,
        "This Idempotency-Key was used with another request.",
        "该幂等键已用于另一个不同的请求。",
    ),
    "IDEMPOTENCY_KEY_IN_USE": (
        409,
        "A request with this Idempotency-Key is still running.",
        "使用该幂等键的请求仍在处理中。",
    ),
}
register_messages(CODES)

# DESIGN.md (v2, hospital settlement): a `med_type` order from an institution that is not a hospital, or
# with an ec_token of another business type than 01301, is 422 SCOPE_NOT_ALLOWED. The contract names the
# code; at a scan (voucher/errors.py) the same code is 403 and means "needs a personal account", so the
# order's meaning is registered as its own variant: its own status and texts, the same code on the wire.
HOSPITAL_SCOPE_NOT_ALLOWED = register_variant(
    "SCOPE_NOT_ALLOWED",
    "hospital_order",
    (
        422,
        "Hospital settlement (med_type) needs a hospital and an ec_token from a 01301 (settlement) scan.",
        "医院结算（med_type）仅限医院，且 ec_token 须来自 01301（结算）业务类型的扫码。",
    ),
)
