"""AdminClient: the insurance agency's operators (Authorization: Bearer ADMIN_TOKEN)."""

from __future__ import annotations

import datetime as dt
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ._base import BaseClient, Query, Result, segment

__all__ = ["AdminClient"]


class AdminClient(BaseClient):
    """Operator calls: persons, cross-region filings, institutions, webhooks, contributions.

    Retries as the other clients (503s; network errors of GET/PUT/DELETE or of requests that never
    left). Every method raises `yibao_client.errors.YibaoError` subclasses: `AdminAuthFailed`,
    `ValidationFailed`, `NotFound`, `Conflict`, `ServiceUnavailable`, `ConnectionFailed`.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10,
        max_retries: int = 3,
        backoff: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
        language: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(
            base_url,
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            sleep=sleep,
            language=language,
            ssl_context=ssl_context,
        )
        self._token = token

    def __repr__(self) -> str:  # never the token
        return f"AdminClient({self.base_url!r})"

    def _auth_headers(self, method: str, target: str, body: bytes) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def request(self, method: str, path: str, json: Any = None, *, query: Query | None = None) -> Result:
        """An operator call; `path` under /api/v1 (e.g. '/admin/persons')."""
        return self._call(method, path, json=json, query=query)

    def iterate(self, path: str, query: Query | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a paginated GET ({items, next_cursor})."""
        return self._pages(path, query, lambda m, p, query: self.request(m, p, query=query))

    # ------------------------------------------------------------ persons

    def create_person(
        self,
        *,
        name: str,
        id_number: str,
        insurance_type: str,
        insured_region: str,
        personal_account_balance_fen: int | None = None,
        status: str | None = None,
        **extra: Any,
    ) -> Result:
        """Register an insured person: `{psn_no}`. Raises Conflict (PERSON_EXISTS), ValidationFailed."""
        body: dict[str, Any] = {
            "name": name,
            "id_number": id_number,
            "insurance_type": insurance_type,
            "insured_region": insured_region,
            **extra,
        }
        if personal_account_balance_fen is not None:
            body["personal_account_balance_fen"] = personal_account_balance_fen
        if status is not None:
            body["status"] = status
        return self.request("POST", "/admin/persons", body)

    def get_person(self, psn_no: str) -> Result:
        """A person, masked. Raises NotFound."""
        return self.request("GET", f"/admin/persons/{segment(psn_no, 'psn_no')}")

    def lookup_person(self, id_number: str) -> Result:
        """Find a person by ID number (sent in the body, never in a URL). Raises NotFound."""
        return self.request("POST", "/admin/persons/lookups", {"id_number": id_number})

    def update_person(self, psn_no: str, **fields: Any) -> Result:
        """PATCH a person (e.g. `status="suspended"`, which voids their codes). Raises NotFound."""
        return self.request("PATCH", f"/admin/persons/{segment(psn_no, 'psn_no')}", fields)

    def persons(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every person matching the filters (status, insurance_type, insured_region, limit)."""
        return self.iterate("/admin/persons", filters)

    def add_cross_region_filing(
        self,
        psn_no: str,
        region: str,
        *,
        valid_from: dt.date | str | None = None,
        valid_until: dt.date | str | None = None,
    ) -> Result:
        """Record a cross-region filing: `{filing_no, region, valid_from, valid_until}`."""
        body: dict[str, Any] = {"region": region}
        if valid_from is not None:
            body["valid_from"] = str(valid_from)
        if valid_until is not None:
            body["valid_until"] = str(valid_until)
        return self.request("POST", f"/admin/persons/{segment(psn_no, 'psn_no')}/cross-region-filings", body)

    # ------------------------------------------------------------ institutions

    def create_institution(
        self, *, name: str, kind: str, region: str, services: Sequence[str], **extra: Any
    ) -> Result:
        """Designate an institution: `{org_id, key_id, secret}` (the secret is shown only here)."""
        body = {"name": name, "kind": kind, "region": region, "services": list(services), **extra}
        return self.request("POST", "/admin/institutions", body)

    def get_institution(self, org_id: str) -> Result:
        """An institution (never its secret). Raises NotFound."""
        return self.request("GET", f"/admin/institutions/{segment(org_id, 'org_id')}")

    def update_institution(self, org_id: str, **fields: Any) -> Result:
        """PATCH an institution (`status`, `services`). Raises NotFound, ValidationFailed."""
        return self.request("PATCH", f"/admin/institutions/{segment(org_id, 'org_id')}", fields)

    def rotate_secret(self, org_id: str) -> Result:
        """A new key id and secret; the old ones stop working at once. Raises NotFound."""
        return self.request("POST", f"/admin/institutions/{segment(org_id, 'org_id')}/secret-rotations")

    def institutions(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every institution matching the filters (kind, region, status, limit)."""
        return self.iterate("/admin/institutions", filters)

    def set_webhook(self, org_id: str, url: str | None = None) -> Result:
        """Set the webhook URL and issue a new `whsec_` secret: `{url, secret}`."""
        return self.request("PUT", f"/admin/institutions/{segment(org_id, 'org_id')}/webhook", {"url": url})

    def credit_contribution(self, psn_no: str, year: int, amount_fen: int) -> Result:
        """Credit a yearly contribution, once per person and year. Raises Conflict (CONTRIBUTION_CONFLICT)."""
        body = {"psn_no": psn_no, "year": year, "amount_fen": amount_fen}
        return self.request("POST", "/admin/contributions", body)

    def reconciliation(self) -> Result:
        """The whole-ledger check (balanced, sealed, balances = entries, none negative)."""
        return self.request("GET", "/admin/ledger/reconciliation")
