"""The benefits error codes (status, English, Chinese), registered once at import."""

from __future__ import annotations

from yibao.errors import register_messages

CODES: dict[str, tuple[int, str, str]] = {
    "BENEFIT_POLICY_NOT_FOUND": (
        404,
        "No benefit policy is set for this region, insurance type and year.",
        "该统筹区、险种和年度尚未设置待遇政策。",
    ),
    "BENEFIT_POLICY_MISSING": (
        422,
        "No benefit policy applies to the person's insured region, insurance type and year.",
        "参保地（含上级统筹区）该险种和年度没有可用的待遇政策，无法结算。",
    ),
    "REFUND_MUST_BE_WHOLE": (
        422,
        "A hospital settlement is refunded whole: amount_fen, if sent, must equal what is left to refund.",
        "医院结算只能整单退款：如传 amount_fen，必须等于剩余可退金额。",
    ),
}

register_messages(CODES)
