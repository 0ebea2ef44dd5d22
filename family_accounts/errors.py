"""The family domain's error codes (registered once, here). Shared codes such as NOT_PERMITTED and
PERSON_SUSPENDED live in yibao/errors.py."""

from __future__ import annotations

from yibao.errors import register_messages

MESSAGES: dict[str, tuple[int, str, str]] = {
    "FAMILY_LIMIT_REACHED": (409, "At most 5 active family members.", "亲情账户最多绑定 5 名成员。"),
    "RELATIONSHIP_NOT_ALLOWED": (422, "This relationship is not allowed here.", "该亲属关系不被允许。"),
    "BINDING_NOT_ACTIVE": (409, "The family binding is not active.", "亲情账户绑定未生效。"),
    "MEMBER_NOT_FOUND": (
        404,
        "No insured person with this ID number and name.",
        "未找到与该证件号码和姓名一致的参保人。",
    ),
    "SELF_NOT_ALLOWED": (422, "You cannot name yourself here.", "不能绑定或指定本人。"),
    "BINDING_EXISTS": (409, "A live binding with this member already exists.", "已存在与该成员的绑定。"),
    "BINDING_NOT_FOUND": (404, "No such family binding.", "亲情账户绑定不存在。"),
    "BINDING_NOT_PENDING": (
        409,
        "The binding is not waiting for approval.",
        "该绑定不在待确认状态。",
    ),
    "GUARDIAN_PROOF_REQUIRED": (
        422,
        "A member aged 16 or under is bound with a guardian proof.",
        "绑定 16 周岁及以下成员须提供监护关系证明。",
    ),
    "GUARDIAN_PROOF_INVALID": (
        422,
        "The guardian proof is invalid, expired or already used.",
        "监护关系证明无效、已过期或已使用。",
    ),
    "GUARDIAN_PROOF_MISMATCH": (
        403,
        "The guardian proof is not for you and this child.",
        "监护关系证明与本人或该未成年人不符。",
    ),
    "GUARDIAN_PROOF_NOT_APPLICABLE": (
        422,
        "A member over 16 approves the binding themselves; no guardian proof is taken.",
        "16 周岁以上成员须本人确认绑定，不接受监护关系证明。",
    ),
    "HOLDER_HAS_NO_PERSONAL_ACCOUNT": (
        422,
        "Only an employee-insured person with a personal account can share it.",
        "仅有个人账户的职工医保参保人可开通家庭共济。",
    ),
    "MUTUAL_AID_FILING_EXISTS": (
        409,
        "A pending or active mutual-aid filing for this relative already exists.",
        "已为该亲属申请或开通家庭共济。",
    ),
    "MUTUAL_AID_FILING_NOT_FOUND": (404, "No such mutual-aid filing.", "家庭共济备案不存在。"),
    "MUTUAL_AID_FILING_NOT_PENDING": (
        409,
        "The mutual-aid filing is not waiting for the member's approval.",
        "该家庭共济备案不在待确认状态。",
    ),
}

register_messages(MESSAGES)
