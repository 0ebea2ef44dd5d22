"""Typed exceptions chosen by the problem's `code` (RFC 9457 problem+json answers of yibao).

Act on the class (or on `.code`), never on `.detail`, whose language follows Accept-Language.
Every exception is a `YibaoError`; a code this SDK does not know yet gives a plain `YibaoError`
(or `ServiceUnavailable` when the status is 503), so new server codes never break a client.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = [
    "YibaoError",
    "ConnectionFailed",
    "NonProblemResponse",
    "AuthenticationFailed",
    "InstitutionAuthFailed",
    "InstitutionDisabled",
    "TokenInvalid",
    "RefreshTokenInvalid",
    "RefreshTokenReused",
    "AdminAuthFailed",
    "IdentityProofInvalid",
    "NotPermitted",
    "PersonSuspended",
    "NotFound",
    "Conflict",
    "ValidationFailed",
    "BadRequest",
    "IdempotencyError",
    "IdempotencyKeyRequired",
    "IdempotencyKeyInUse",
    "IdempotencyKeyReused",
    "VoucherRefused",
    "VoucherInvalid",
    "VoucherExpired",
    "VoucherAlreadyUsed",
    "VoucherRevoked",
    "NotCovered",
    "PaymentGrantInvalid",
    "InsufficientBalance",
    "OrderStateConflict",
    "OrderExpired",
    "RefundExceedsPaid",
    "ItemNotEligible",
    "TraceCodeError",
    "TraceCodeAlreadySettled",
    "BindingNotActive",
    "FamilyLimitReached",
    "ServiceUnavailable",
    "CODES",
    "from_response",
]

PROBLEM_MIME = "application/problem+json"


class YibaoError(Exception):
    """An error answer (or no answer) from yibao.

    Attributes: `status` (HTTP status; None when no answer arrived), `code` (the stable upper-case
    code), `detail` (human text, localized), `problem` (the whole problem body, {} if none),
    `request_id` (quote it to the operator), `headers` (of the answer, lower-case names).
    """

    def __init__(
        self,
        status: int | None,
        code: str,
        detail: str,
        problem: dict[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail}" if status is not None else f"{code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.problem: dict[str, Any] = dict(problem or {})
        self.headers: dict[str, str] = {k.lower(): v for k, v in (headers or {}).items()}

    @property
    def request_id(self) -> str | None:
        rid = self.problem.get("request_id") or self.headers.get("x-request-id")
        return rid if isinstance(rid, str) else None


class ConnectionFailed(YibaoError):
    """No answer: connection refused or reset, timeout, TLS or DNS failure (after the allowed retries).

    `code` is "NETWORK_ERROR", `status` None, `__cause__` the underlying exception. For a request that
    was not retry-safe the server may or may not have acted on it: look the result up (e.g.
    `get_order`) before trying again with a new idempotency key.
    """


class NonProblemResponse(YibaoError):
    """An error answer that is not problem+json (an HTML page of a proxy, a load balancer's 502…).

    `code` is "NON_PROBLEM_RESPONSE"; `body` holds the first bytes of the answer.
    """

    body: bytes = b""


class AuthenticationFailed(YibaoError):
    """Base of the 401 answers."""


class InstitutionAuthFailed(AuthenticationFailed):
    """INSTITUTION_AUTH_FAILED: bad signature, stale timestamp, reused nonce, unknown key id.

    `reason` is the server's reason code when it sends one (HEADERS_MISSING, KEY_UNKNOWN, KEY_DISABLED,
    TIMESTAMP_SKEW, NONCE_REUSED, SIGNATURE_MISMATCH), else None. A TIMESTAMP_SKEW means the machine's
    clock is off: fix NTP, do not retry.
    """

    @property
    def reason(self) -> str | None:
        r = self.problem.get("reason")
        return r if isinstance(r, str) else None


class InstitutionDisabled(YibaoError):
    """INSTITUTION_DISABLED (403): the operator disabled this institution."""


class TokenInvalid(AuthenticationFailed):
    """TOKEN_INVALID / AUTHENTICATION_REQUIRED: the access token is missing, invalid or expired."""


class RefreshTokenInvalid(AuthenticationFailed):
    """REFRESH_TOKEN_INVALID: the refresh token is invalid or expired: activate again."""


class RefreshTokenReused(RefreshTokenInvalid):
    """REFRESH_TOKEN_REUSED: a used refresh token was presented again; the whole login was ended."""


class AdminAuthFailed(AuthenticationFailed):
    """ADMIN_AUTH_FAILED: the operator token is missing or wrong."""


class IdentityProofInvalid(AuthenticationFailed):
    """IDENTITY_PROOF_INVALID: the identity proof is forged, expired or already used."""


class NotPermitted(YibaoError):
    """403 refusals of who you are: NOT_PERMITTED, IDENTITY_MISMATCH, NOT_ACTIVATED,
    GUARDIAN_PROOF_MISMATCH."""


class PersonSuspended(YibaoError):
    """PERSON_SUSPENDED (403): the insured person (or the member acted for) is suspended."""


class NotFound(YibaoError):
    """404 answers: NOT_FOUND, ORDER_NOT_FOUND, PERSON_NOT_FOUND, BINDING_NOT_FOUND, …"""


class Conflict(YibaoError):
    """409 answers about something that already exists (PERSON_EXISTS, MERCHANT_ORDER_EXISTS, …)."""


class ValidationFailed(YibaoError):
    """VALIDATION_FAILED (422): `errors` maps field names to their messages."""

    @property
    def errors(self) -> dict[str, Any]:
        e = self.problem.get("errors")
        return e if isinstance(e, dict) else {}


class BadRequest(YibaoError):
    """400 answers about the request's form: BAD_REQUEST, MALFORMED_JSON, UNSUPPORTED_MEDIA_TYPE, …"""


class IdempotencyError(YibaoError):
    """Base of the Idempotency-Key answers."""


class IdempotencyKeyRequired(IdempotencyError):
    """IDEMPOTENCY_KEY_REQUIRED (400): the endpoint needs an Idempotency-Key (or it is malformed)."""


class IdempotencyKeyInUse(IdempotencyError):
    """IDEMPOTENCY_KEY_IN_USE (409): the first request with this key is still running.

    The clients retry it by themselves with the same key; you see it only when the retries ran out.
    """


class IdempotencyKeyReused(IdempotencyError):
    """IDEMPOTENCY_KEY_REUSED (422): the same key was sent with another body: a bug in the caller."""


class VoucherRefused(YibaoError):
    """Base of the refusals of a scanned code; the person must show a new code."""


class VoucherInvalid(VoucherRefused):
    """VOUCHER_MALFORMED, VOUCHER_SIGNATURE_INVALID: not a yibao code (or a forged one)."""


class VoucherExpired(VoucherRefused):
    """VOUCHER_EXPIRED: the code is older than its lifetime; ask for a refreshed code."""


class VoucherAlreadyUsed(VoucherRefused):
    """VOUCHER_ALREADY_USED (409): a code is single use, even when its first use was refused."""


class VoucherRevoked(VoucherRefused):
    """VOUCHER_REVOKED: the person revoked their codes (lost phone), or the family binding ended."""


class NotCovered(YibaoError):
    """The person or institution is not covered for this: REGION_NOT_COVERED, SCOPE_NOT_ALLOWED,
    INSTITUTION_NOT_DESIGNATED, BUSINESS_TYPE_NOT_PAYABLE, NO_PERSONAL_ACCOUNT,
    HOLDER_HAS_NO_PERSONAL_ACCOUNT."""


class PaymentGrantInvalid(YibaoError):
    """The pay_auth_no or ec_token cannot pay this order: PAY_AUTH_INVALID, PAY_AUTH_ALREADY_USED,
    PAY_AUTH_PURPOSE_MISMATCH, EC_TOKEN_INVALID. Ask the user for a new authorization or code."""


class InsufficientBalance(YibaoError):
    """INSUFFICIENT_BALANCE (409): an `account_only` order the accounts cannot cover."""


class OrderStateConflict(YibaoError):
    """ORDER_STATE_CONFLICT (409): paying twice, cancelling a paid order, refunding an unpaid one…"""


class OrderExpired(OrderStateConflict):
    """ORDER_EXPIRED (409): not paid within 30 minutes of being placed; cancel and place a new one."""


class RefundExceedsPaid(YibaoError):
    """REFUND_EXCEEDS_PAID (409): more than what is left to refund."""


class ItemNotEligible(YibaoError):
    """ITEM_NOT_ELIGIBLE: a prescription drug in an online OTC order, or another ineligible line."""


class TraceCodeError(YibaoError):
    """Traceability-code refusals: TRACE_CODE_MALFORMED, _DUPLICATE, _COUNT_MISMATCH, _NOT_IN_ORDER,
    REFUND_TOO_SMALL_FOR_CODES."""


class TraceCodeAlreadySettled(TraceCodeError):
    """TRACE_CODE_ALREADY_SETTLED (409): a box already sold somewhere: a fake, resold or swapped drug."""


class BindingNotActive(YibaoError):
    """BINDING_NOT_ACTIVE (409): the family binding waits for the member's approval."""


class FamilyLimitReached(YibaoError):
    """FAMILY_LIMIT_REACHED (409): a binder holds at most 5 live bindings."""


class ServiceUnavailable(YibaoError):
    """503: REPLAY_STORE_UNAVAILABLE, DATABASE_UNAVAILABLE (or any 503). Nothing was done; the clients
    retry these by themselves, you see it only when the retries ran out."""


CODES: dict[str, type[YibaoError]] = {
    "INSTITUTION_AUTH_FAILED": InstitutionAuthFailed,
    "INSTITUTION_DISABLED": InstitutionDisabled,
    "TOKEN_INVALID": TokenInvalid,
    "AUTHENTICATION_REQUIRED": TokenInvalid,
    "REFRESH_TOKEN_INVALID": RefreshTokenInvalid,
    "REFRESH_TOKEN_REUSED": RefreshTokenReused,
    "ADMIN_AUTH_FAILED": AdminAuthFailed,
    "IDENTITY_PROOF_INVALID": IdentityProofInvalid,
    "NOT_PERMITTED": NotPermitted,
    "IDENTITY_MISMATCH": NotPermitted,
    "NOT_ACTIVATED": NotPermitted,
    "GUARDIAN_PROOF_MISMATCH": NotPermitted,
    "PERSON_SUSPENDED": PersonSuspended,
    "NOT_FOUND": NotFound,
    "ORDER_NOT_FOUND": NotFound,
    "PERSON_NOT_FOUND": NotFound,
    "INSTITUTION_NOT_FOUND": NotFound,
    "MEMBER_NOT_FOUND": NotFound,
    "BINDING_NOT_FOUND": NotFound,
    "MUTUAL_AID_FILING_NOT_FOUND": NotFound,
    "SANDBOX_DISABLED": NotFound,
    "PERSON_EXISTS": Conflict,
    "MERCHANT_ORDER_EXISTS": Conflict,
    "BINDING_EXISTS": Conflict,
    "MUTUAL_AID_FILING_EXISTS": Conflict,
    "CONTRIBUTION_CONFLICT": Conflict,
    "VALIDATION_FAILED": ValidationFailed,
    "BAD_REQUEST": BadRequest,
    "MALFORMED_JSON": BadRequest,
    "UNSUPPORTED_MEDIA_TYPE": BadRequest,
    "PAYLOAD_TOO_LARGE": BadRequest,
    "METHOD_NOT_ALLOWED": BadRequest,
    "IDEMPOTENCY_KEY_REQUIRED": IdempotencyKeyRequired,
    "IDEMPOTENCY_KEY_IN_USE": IdempotencyKeyInUse,
    "IDEMPOTENCY_KEY_REUSED": IdempotencyKeyReused,
    "VOUCHER_MALFORMED": VoucherInvalid,
    "VOUCHER_SIGNATURE_INVALID": VoucherInvalid,
    "VOUCHER_EXPIRED": VoucherExpired,
    "VOUCHER_ALREADY_USED": VoucherAlreadyUsed,
    "VOUCHER_REVOKED": VoucherRevoked,
    "REGION_NOT_COVERED": NotCovered,
    "SCOPE_NOT_ALLOWED": NotCovered,
    "INSTITUTION_NOT_DESIGNATED": NotCovered,
    "BUSINESS_TYPE_NOT_PAYABLE": NotCovered,
    "NO_PERSONAL_ACCOUNT": NotCovered,
    "HOLDER_HAS_NO_PERSONAL_ACCOUNT": NotCovered,
    "PAY_AUTH_INVALID": PaymentGrantInvalid,
    "PAY_AUTH_ALREADY_USED": PaymentGrantInvalid,
    "PAY_AUTH_PURPOSE_MISMATCH": PaymentGrantInvalid,
    "EC_TOKEN_INVALID": PaymentGrantInvalid,
    "INSUFFICIENT_BALANCE": InsufficientBalance,
    "ORDER_STATE_CONFLICT": OrderStateConflict,
    "ORDER_EXPIRED": OrderExpired,
    "REFUND_EXCEEDS_PAID": RefundExceedsPaid,
    "ITEM_NOT_ELIGIBLE": ItemNotEligible,
    "TRACE_CODE_MALFORMED": TraceCodeError,
    "TRACE_CODE_DUPLICATE": TraceCodeError,
    "TRACE_CODE_COUNT_MISMATCH": TraceCodeError,
    "TRACE_CODE_NOT_IN_ORDER": TraceCodeError,
    "REFUND_TOO_SMALL_FOR_CODES": TraceCodeError,
    "TRACE_CODE_ALREADY_SETTLED": TraceCodeAlreadySettled,
    "BINDING_NOT_ACTIVE": BindingNotActive,
    "FAMILY_LIMIT_REACHED": FamilyLimitReached,
    "REPLAY_STORE_UNAVAILABLE": ServiceUnavailable,
    "DATABASE_UNAVAILABLE": ServiceUnavailable,
}


def from_response(status: int, headers: Mapping[str, str], body: bytes) -> YibaoError:
    """The exception for an error answer: by the problem's `code`, else by status 503, else YibaoError.

    An answer that is not a problem+json object with a string `code` gives a NonProblemResponse
    (code "NON_PROBLEM_RESPONSE"), or a ServiceUnavailable with that code when the status is 503.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    problem: Any = None
    mime = lower.get("content-type", "").split(";")[0].strip().lower()
    if mime in (PROBLEM_MIME, "application/json"):
        try:
            problem = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            problem = None
    if not (isinstance(problem, dict) and isinstance(problem.get("code"), str)):
        text = body[:200].decode("utf-8", "replace").strip()
        detail = f"HTTP {status} without a problem+json body" + (f": {text}" if text else "")
        cls: type[YibaoError] = ServiceUnavailable if status == 503 else NonProblemResponse
        err = cls(status, "NON_PROBLEM_RESPONSE", detail, {}, headers=lower)
        if isinstance(err, NonProblemResponse):
            err.body = body[:2048]
        return err
    code = problem["code"]
    detail = problem.get("detail") if isinstance(problem.get("detail"), str) else code
    cls = CODES.get(code) or (ServiceUnavailable if status == 503 else YibaoError)
    return cls(status, code, detail, problem, headers=lower)
