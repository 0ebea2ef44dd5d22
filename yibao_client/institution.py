"""InstitutionClient: what a pharmacy's or hospital's system calls (signed requests)."""

from __future__ import annotations

import datetime as dt
import re
import ssl
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from . import signing
from ._base import _IDEMPOTENCY_KEY, BaseClient, Query, Result, api_path, segment

__all__ = ["InstitutionClient"]

# POSTs where the server honours an Idempotency-Key (required on the first three, optional on cancel).
_KEYED_POST = re.compile(r"/api/v1/payment-orders(/[A-Za-z0-9_-]+/(pay|refunds|cancel))?")


class InstitutionClient(BaseClient):
    """Signed calls of one institution (key id + secret from the operator).

    Every attempt is signed afresh (new timestamp and nonce). POSTs that the server makes idempotent
    (`/payment-orders`, `…/{id}/pay`, `…/{id}/refunds`, `…/{id}/cancel`) get an Idempotency-Key (a uuid4
    unless you pass one), the same on every retry; with `idempotency_keys_on_all_posts=True` every
    POST gets one (and is then treated as retry-safe: only do this if every POST you make is).

    Automatic retries (at most `max_retries`, exponential backoff with jitter from `backoff` seconds):
    503 answers, 409 IDEMPOTENCY_KEY_IN_USE, and network errors (refused, reset, timeout) of
    idempotent requests — GET/PUT/DELETE, or a POST carrying an Idempotency-Key. A request that
    provably never left (connection refused, DNS failure) is retried whatever its method. No other
    4xx is ever retried.

    Every method raises `yibao_client.errors.YibaoError` subclasses: `InstitutionAuthFailed` (wrong
    key/secret, clock skew), `InstitutionDisabled`, `ValidationFailed`, `ServiceUnavailable` (503 after
    the retries), `ConnectionFailed` (no answer after the retries), and those listed per method.
    """

    def __init__(
        self,
        base_url: str,
        key_id: str,
        secret: str,
        *,
        timeout: float = 10,
        max_retries: int = 3,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        idempotency_keys_on_all_posts: bool = False,
        language: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            base_url,
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            max_backoff=max_backoff,
            sleep=sleep,
            language=language,
            ssl_context=ssl_context,
        )
        self.key_id = signing.check_key_id(key_id)
        self._secret = secret
        self.idempotency_keys_on_all_posts = idempotency_keys_on_all_posts
        self.clock = clock

    def __repr__(self) -> str:  # never the secret
        return f"InstitutionClient({self.base_url!r}, key_id={self.key_id!r})"

    def _auth_headers(self, method: str, target: str, body: bytes) -> dict[str, str]:
        return signing.sign(
            self._secret, method, target, body, key_id=self.key_id, timestamp=int(self.clock())
        )

    def needs_idempotency_key(self, method: str, path: str) -> bool:
        """Whether `request` adds an Idempotency-Key to this call by itself."""
        if method.upper() != "POST":
            return False
        return self.idempotency_keys_on_all_posts or bool(_KEYED_POST.fullmatch(api_path(path)))

    def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        query: Query | None = None,
        idempotency_key: str | None = None,
    ) -> Result:
        """A signed call. `path` is under /api/v1 ('/payment-orders') or a full '/api/…' path.

        `idempotency_key`: your own key (e.g. derived from your order number, so that a restart of your
        process retries with the same key); otherwise one is generated where needed. The same key is sent
        on every retry. Raises the errors listed on the class.
        """
        if idempotency_key is None and self.needs_idempotency_key(method, path):
            idempotency_key = str(uuid.uuid4())
        headers: dict[str, str] = {}
        if idempotency_key is not None:
            if not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
                raise ValueError("an Idempotency-Key is 1-255 visible ASCII characters")
            headers["Idempotency-Key"] = idempotency_key
        retry_network = method.upper() in ("GET", "HEAD", "OPTIONS", "PUT", "DELETE") or (
            idempotency_key is not None
        )
        return self._call(method, path, json=json, query=query, headers=headers, retry_network=retry_network)

    def iterate(self, path: str, query: Query | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a paginated GET ({items, next_cursor}), following next_cursor page by page."""
        return self._pages(path, query, lambda m, p, query: self.request(m, p, query=query))

    # ------------------------------------------------------------ e-voucher

    def verify(
        self,
        qr_content: str,
        business_type: str,
        operator_id: str,
        operator_name: str,
        device_id: str,
        out_biz_no: str,
    ) -> Result:
        """Verify a scanned code: `{ec_token, expires_in, business_type, person}`.

        Not retried after a network error once sent (the code may have been consumed: ask for a new one).
        Raises VoucherInvalid, VoucherExpired, VoucherAlreadyUsed, VoucherRevoked (all VoucherRefused),
        PersonSuspended, NotCovered (REGION_NOT_COVERED, SCOPE_NOT_ALLOWED, INSTITUTION_NOT_DESIGNATED),
        ServiceUnavailable (REPLAY_STORE_UNAVAILABLE).
        """
        body = {
            "qr_content": qr_content,
            "business_type": business_type,
            "operator_id": operator_id,
            "operator_name": operator_name,
            "device_id": device_id,
            "out_biz_no": out_biz_no,
        }
        return self.request("POST", "/verifications", body)

    # ------------------------------------------------------------ payments

    def create_order(
        self,
        *,
        merchant_order_no: str,
        items: Sequence[Mapping[str, Any]],
        pay_auth_no: str | None = None,
        ec_token: str | None = None,
        delivery_fee_fen: int = 0,
        account_only: bool = False,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> Result:
        """Place a payment order from exactly one of `pay_auth_no` (the app's authorization) or `ec_token`
        (from `verify`). Items: `{drug_code, drug_name, otc, quantity, unit_price_fen, trace_codes}`;
        `extra` passes further contract fields (e.g. `med_type` of hospital orders).

        Returns `{pay_order_id, status: "created", total_fen, account_pay_fen, mutual_aid_pay_fen,
        cash_pay_fen, …}`. Raises PaymentGrantInvalid, ItemNotEligible, TraceCodeError,
        TraceCodeAlreadySettled, InsufficientBalance (account_only), Conflict (MERCHANT_ORDER_EXISTS),
        NotCovered, NotPermitted, PersonSuspended, IdempotencyKeyReused.
        """
        if (pay_auth_no is None) == (ec_token is None):
            raise ValueError("give exactly one of pay_auth_no and ec_token")
        body: dict[str, Any] = {"merchant_order_no": merchant_order_no, "items": [dict(i) for i in items]}
        body["pay_auth_no" if pay_auth_no is not None else "ec_token"] = pay_auth_no or ec_token
        body["delivery_fee_fen"] = delivery_fee_fen
        if account_only:
            body["account_only"] = True
        body.update(extra)
        return self.request("POST", "/payment-orders", body, idempotency_key=idempotency_key)

    def pay(self, order_id: str, *, idempotency_key: str | None = None) -> Result:
        """Settle a created order: `{status: "paid", paid_at, account_pay_fen, …}` (the final split).

        Raises OrderStateConflict, OrderExpired, InsufficientBalance, TraceCodeAlreadySettled,
        PersonSuspended, NotPermitted, NotFound (ORDER_NOT_FOUND), IdempotencyKeyReused.
        """
        path = f"/payment-orders/{segment(order_id, 'order_id')}/pay"
        return self.request("POST", path, idempotency_key=idempotency_key)

    def cancel(self, order_id: str, *, idempotency_key: str | None = None) -> Result:
        """Revoke an unpaid order: `{status: "cancelled", …}`. Raises OrderStateConflict, NotFound."""
        path = f"/payment-orders/{segment(order_id, 'order_id')}/cancel"
        return self.request("POST", path, idempotency_key=idempotency_key)

    def get_order(self, order_id: str) -> Result:
        """The order with its items and refunds. Raises NotFound (also for another institution's order)."""
        return self.request("GET", f"/payment-orders/{segment(order_id, 'order_id')}")

    def refund(
        self,
        order_id: str,
        amount_fen: int | None = None,
        *,
        reason: str,
        trace_codes: Sequence[str] | None = None,
        idempotency_key: str | None = None,
    ) -> Result:
        """Refund `amount_fen` (None: everything left) of a paid order: `{refund_id, status, amount_fen,
        account_refund_fen, mutual_aid_refund_fen, cash_refund_fen, released_trace_codes}`.

        Raises RefundExceedsPaid, OrderStateConflict, TraceCodeError, NotFound, IdempotencyKeyReused.
        """
        body: dict[str, Any] = {"reason": reason}
        if amount_fen is not None:
            body["amount_fen"] = amount_fen
        if trace_codes:
            body["trace_codes"] = list(trace_codes)
        path = f"/payment-orders/{segment(order_id, 'order_id')}/refunds"
        return self.request("POST", path, body, idempotency_key=idempotency_key)

    def statement(self, day: dt.date | str) -> Result:
        """The statement of one Beijing calendar day (paid, refunds, net, ledger view, `reconciled`)."""
        return self.request("GET", "/statements", query={"date": str(day)})

    # ------------------------------------------------------------ registry

    def me(self) -> Result:
        """The calling institution as registered (a signed no-op: check your signing with it)."""
        return self.request("GET", "/institutions/me")
