"""UserClient: what the mobile app calls (bearer tokens, refreshed on their own)."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ._base import BaseClient, Query, Result, segment
from .errors import RefreshTokenInvalid, TokenInvalid

__all__ = ["UserClient", "Tokens"]


@dataclass(frozen=True)
class Tokens:
    """A token pair. Persist the refresh token every time it changes: an old one, presented again,
    ends the whole login (REFRESH_TOKEN_REUSED)."""

    access_token: str
    refresh_token: str | None
    psn_no: str | None = None


class UserClient(BaseClient):
    """Calls of an insured person's app.

    After `activate` (or with tokens given) every call carries the access token. A 401 TOKEN_INVALID
    (expired access token) is answered once by rotating the tokens with POST /sessions/refresh and
    repeating the call; `on_tokens` is called with every new pair so that the app can store it. Retries
    as InstitutionClient: 503s, and network errors of GET/PUT/DELETE (or of requests that never left).

    Every method raises `yibao_client.errors.YibaoError` subclasses: `TokenInvalid` (no valid token and
    the refresh did not help), `RefreshTokenInvalid` / `RefreshTokenReused` (the login is over: activate
    again), `ValidationFailed`, `ServiceUnavailable`, `ConnectionFailed`, and those listed per method.
    """

    def __init__(
        self,
        base_url: str,
        *,
        access_token: str | None = None,
        refresh_token: str | None = None,
        on_tokens: Callable[[Tokens], None] | None = None,
        timeout: float = 10,
        max_retries: int = 3,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        language: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
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
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.psn_no: str | None = None
        self.on_tokens = on_tokens
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the tokens
        return f"UserClient({self.base_url!r}, psn_no={self.psn_no!r})"

    # ------------------------------------------------------------ tokens

    def _store(self, answer: Result) -> None:
        self.access_token = answer["access_token"]
        self.refresh_token = answer.get("refresh_token")
        self.psn_no = answer.get("psn_no") or self.psn_no
        if self.on_tokens:
            self.on_tokens(Tokens(self.access_token, self.refresh_token, self.psn_no))

    def refresh(self) -> Tokens:
        """Rotate the token pair now (POST /sessions/refresh). Raises RefreshTokenInvalid (no refresh
        token, or expired) and RefreshTokenReused (the login was ended); the tokens are then cleared."""
        with self._lock:
            return self._refresh_locked()

    def _refresh_locked(self) -> Tokens:
        if not self.refresh_token:
            raise RefreshTokenInvalid(None, "REFRESH_TOKEN_INVALID", "no refresh token: activate first")
        try:
            answer = self._call(
                "POST", "/sessions/refresh", json={"refresh_token": self.refresh_token}, retry_network=False
            )
        except RefreshTokenInvalid:
            self.access_token = self.refresh_token = None
            raise
        self._store(answer)
        return Tokens(answer["access_token"], answer.get("refresh_token"), self.psn_no)

    def request(
        self, method: str, path: str, json: Any = None, *, query: Query | None = None, auth: bool = True
    ) -> Result:
        """A call with the access token (when `auth`). On 401 TOKEN_INVALID the tokens are rotated once
        and the call repeated (it had been refused before doing anything, so this is always safe)."""
        if not auth:
            return self._call(method, path, json=json, query=query)
        sent_with = self.access_token
        try:
            return self._call(method, path, json=json, query=query, headers=self._bearer(sent_with))
        except TokenInvalid:
            if not self.refresh_token:
                raise
            with self._lock:
                if self.access_token == sent_with:  # nobody refreshed meanwhile
                    self._refresh_locked()
            return self._call(method, path, json=json, query=query, headers=self._bearer(self.access_token))

    @staticmethod
    def _bearer(token: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"} if token else {}

    def iterate(self, path: str, query: Query | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a paginated GET ({items, next_cursor}), following next_cursor page by page."""
        return self._pages(path, query, lambda m, p, query: self.request(m, p, query=query))

    # ------------------------------------------------------------ activation

    def sandbox_proof(self, id_number: str, name: str, guardian_of: str | None = None) -> str:
        """A sandbox identity proof (development only; with `guardian_of`, a guardian proof for that child).

        Raises NotFound (SANDBOX_DISABLED, e.g. in production), ValidationFailed.
        """
        body: dict[str, Any] = {"id_number": id_number, "name": name}
        if guardian_of is not None:
            body["guardian_of"] = guardian_of
        return self.request("POST", "/sandbox/identity-proofs", body, auth=False)["identity_proof"]

    def activate(self, id_number: str, name: str, identity_proof: str, device_id: str) -> Result:
        """Activate on this device and keep the token pair: `{psn_no, access_token, refresh_token, …}`.

        Raises IdentityProofInvalid, NotPermitted (IDENTITY_MISMATCH), PersonSuspended, NotFound.
        """
        body = {
            "id_number": id_number,
            "name": name,
            "identity_proof": identity_proof,
            "device_id": device_id,
        }
        answer = self._call("POST", "/activations", json=body)
        self._store(answer)
        return answer

    def logout(self) -> None:
        """End this device's session (DELETE /sessions/current) and forget the tokens."""
        self.request("DELETE", "/sessions/current")
        self.access_token = self.refresh_token = None

    # ------------------------------------------------------------ e-voucher

    def voucher(self, on_behalf_of: str | None = None, qr: str | None = None) -> Result:
        """A fresh single-use code: `{token, qr_content, expires_at, expires_in, qr?}`; `qr` "png" or
        "svg" adds the image as a data: URI. Raises NotPermitted, BindingNotActive, PersonSuspended."""
        body = {"on_behalf_of": on_behalf_of} if on_behalf_of else None
        return self.request("POST", "/vouchers", body, query={"qr": qr})

    def revoke_vouchers(self) -> Result:
        """Void every outstanding code of the caller (lost phone): `{revoked_before}`."""
        return self.request("POST", "/vouchers/revocations")

    def usage(
        self, psn_no: str | None = None, *, limit: int | None = None, cursor: str | None = None
    ) -> Result:
        """One page of who scanned the caller's (or a member's) codes: `{items, next_cursor}`.
        Raises NotPermitted."""
        return self.request(
            "GET", "/vouchers/usage", query={"psn_no": psn_no, "limit": limit, "cursor": cursor}
        )

    def iterate_usage(
        self, psn_no: str | None = None, *, limit: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every usage record, newest first, page after page."""
        return self.iterate("/vouchers/usage", {"psn_no": psn_no, "limit": limit})

    # ------------------------------------------------------------ accounts and payments

    def account(self, on_behalf_of: str | None = None) -> Result:
        """`{psn_no, balance_fen}` of the caller (or a member). Raises NotCovered (NO_PERSONAL_ACCOUNT),
        NotPermitted."""
        return self.request("GET", "/accounts/me", query={"on_behalf_of": on_behalf_of})

    def entries(
        self, on_behalf_of: str | None = None, *, limit: int | None = None, cursor: int | None = None
    ) -> Result:
        """One page of ledger entries, newest first: `{items, next_cursor}`."""
        q = {"on_behalf_of": on_behalf_of, "limit": limit, "cursor": cursor}
        return self.request("GET", "/accounts/me/entries", query=q)

    def iterate_entries(
        self, on_behalf_of: str | None = None, *, limit: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every ledger entry, newest first, page after page."""
        return self.iterate("/accounts/me/entries", {"on_behalf_of": on_behalf_of, "limit": limit})

    def pay_authorization(self, purpose: str, on_behalf_of: str | None = None) -> Result:
        """Authorize one payment (`purpose` "online_otc" or "counter"): `{pay_auth_no, expires_at, …}`.
        Raises NotPermitted, BindingNotActive, PersonSuspended, NotCovered."""
        body: dict[str, Any] = {"purpose": purpose}
        if on_behalf_of:
            body["on_behalf_of"] = on_behalf_of
        return self.request("POST", "/pay-authorizations", body)

    def get_order(self, order_id: str) -> Result:
        """An order the caller paid (or acted for). Raises NotFound."""
        return self.request("GET", f"/payment-orders/{segment(order_id, 'order_id')}")

    # ------------------------------------------------------------ family

    def bind(
        self, member_id_number: str, member_name: str, relationship: str, guardian_proof: str | None = None
    ) -> Result:
        """Bind a relative: `{binding_id, status: pending|active, …}`. Raises NotFound (MEMBER_NOT_FOUND),
        FamilyLimitReached, Conflict (BINDING_EXISTS), NotPermitted (GUARDIAN_PROOF_MISMATCH), and
        YibaoError with `.code` RELATIONSHIP_NOT_ALLOWED, SELF_NOT_ALLOWED or GUARDIAN_PROOF_REQUIRED /
        _INVALID / _NOT_APPLICABLE."""
        body: dict[str, Any] = {
            "member_id_number": member_id_number,
            "member_name": member_name,
            "relationship": relationship,
        }
        if guardian_proof is not None:
            body["guardian_proof"] = guardian_proof
        return self.request("POST", "/family/bindings", body)

    def bindings(self) -> list[dict[str, Any]]:
        """Bindings where the caller is binder or member (each with the caller's `role`)."""
        return self.request("GET", "/family/bindings")["bindings"]

    def binding(self, binding_id: str) -> Result:
        """One binding. Raises NotFound."""
        return self.request("GET", f"/family/bindings/{segment(binding_id, 'binding_id')}")

    def approve_binding(self, binding_id: str) -> Result:
        """The member approves. Raises NotPermitted (the binder cannot), NotFound, YibaoError
        (BINDING_NOT_PENDING)."""
        return self.request("POST", f"/family/bindings/{segment(binding_id, 'binding_id')}/approve")

    def decline_binding(self, binding_id: str) -> Result:
        """The member declines. Raises NotPermitted, NotFound, YibaoError (BINDING_NOT_PENDING)."""
        return self.request("POST", f"/family/bindings/{segment(binding_id, 'binding_id')}/decline")

    def end_binding(self, binding_id: str) -> Result:
        """Either side ends the binding (repeating it changes nothing). Raises NotFound."""
        return self.request("DELETE", f"/family/bindings/{segment(binding_id, 'binding_id')}")

    def binding_events(self, binding_id: str | None = None) -> list[dict[str, Any]]:
        """The audit trail of one binding, or of all the caller's bindings."""
        path = (
            f"/family/bindings/{segment(binding_id, 'binding_id')}/events" if binding_id else "/family/events"
        )
        return self.request("GET", path)["events"]

    def file_mutual_aid(self, member_psn_no: str, relationship: str) -> Result:
        """Let a close relative draw on the caller's personal account: `{filing_id, status, …}`.
        Raises NotCovered (HOLDER_HAS_NO_PERSONAL_ACCOUNT), Conflict (MUTUAL_AID_FILING_EXISTS),
        NotFound, ValidationFailed."""
        body = {"member_psn_no": member_psn_no, "relationship": relationship}
        return self.request("POST", "/family/mutual-aid-filings", body)

    def approve_mutual_aid(self, filing_id: str) -> Result:
        """The member approves a mutual-aid filing (POST …/{id}/approve). Raises NotPermitted, NotFound."""
        return self.request("POST", f"/family/mutual-aid-filings/{segment(filing_id, 'filing_id')}/approve")

    def withdraw_mutual_aid(self, filing_id: str) -> Result:
        """The holder withdraws a filing (DELETE). Raises NotPermitted (the member cannot), NotFound."""
        return self.request("DELETE", f"/family/mutual-aid-filings/{segment(filing_id, 'filing_id')}")

    def mutual_aid_filings(self) -> list[dict[str, Any]]:
        """Filings where the caller is the holder or the member."""
        return self.request("GET", "/family/mutual-aid-filings")["filings"]
