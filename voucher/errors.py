"""The voucher error codes (registered once, at import of the package) and the internal refusal.

Shared codes (PERSON_SUSPENDED, NOT_ACTIVATED, NOT_PERMITTED, REPLAY_STORE_UNAVAILABLE, …) live in
yibao/errors.py; this table holds only the codes of this domain.
"""

from __future__ import annotations

from yibao.errors import register_messages

MESSAGES = {
    "EC_TOKEN_INVALID": (
        422,
        "The ec_token is unknown, expired, or was issued to another institution.",
        "ec_token 无效、已过期或不属于本机构。",
    ),
    "VOUCHER_MALFORMED": (400, "The scanned content is not a voucher.", "扫描内容不是有效的医保码。"),
    "VOUCHER_SIGNATURE_INVALID": (
        422,
        "The voucher was not issued by this platform for this use.",
        "医保码签名校验失败或非本平台签发。",
    ),
    "VOUCHER_EXPIRED": (422, "The voucher has expired; refresh the code.", "医保码已过期，请刷新。"),
    "VOUCHER_ALREADY_USED": (
        409,
        "The voucher was already used; refresh the code.",
        "医保码已使用，请刷新后重试。",
    ),
    "VOUCHER_REVOKED": (422, "The voucher was revoked.", "医保码已作废。"),
    "REGION_NOT_COVERED": (
        403,
        "The person is not insured here and no cross-region filing covers this region.",
        "参保地与就医地不一致且无有效异地就医备案。",
    ),
    "SCOPE_NOT_ALLOWED": (
        403,
        "This business type needs employee insurance with a personal account.",
        "该业务需要职工医保个人账户。",
    ),
    "USAGE_CURSOR_INVALID": (422, "The cursor is invalid.", "分页游标无效。"),
    "DEVICE_NOT_ACTIVATED": (
        403,
        "This is not the device the e-voucher is activated on.",
        "该设备不是医保电子凭证激活的设备。",
    ),
    "OFFLINE_CREDENTIAL_NOT_FOUND": (404, "No such offline credential.", "离线凭据不存在。"),
}
register_messages(MESSAGES)


class Refusal(Exception):
    """A verification refused with this code: audited, then answered as problem+json."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code
