"""Payments test helpers: order lines, traceability codes and the `Pay` driver of the payments API."""

from __future__ import annotations

import itertools
import secrets
from typing import Any

from tests.support import Institution, Person, Yb

_mo = itertools.count(1)


def item(
    *, price: int = 1000, quantity: int = 1, otc: bool = True, codes: list[str] | None = None, **kw: Any
) -> dict:
    return {
        "drug_code": kw.get("drug_code", "XA01"),
        "drug_name": kw.get("drug_name", "布洛芬缓释胶囊"),
        "otc": otc,
        "quantity": quantity,
        "unit_price_fen": price,
        "trace_codes": codes or [],
    }


def trace_code() -> str:
    return "8" + "".join(secrets.choice("0123456789") for _ in range(19))


class Pay:
    """Drives the payments API."""

    def __init__(self, yb: Yb) -> None:
        self.yb = yb

    def pay_auth(self, p: Person, purpose: str = "online_otc", **extra: Any) -> str:
        r = self.yb.as_user(p, "POST", "/pay-authorizations", {"purpose": purpose, **extra})
        assert r.status_code == 201, r.get_json()
        return r.get_json()["pay_auth_no"]

    def order_body(self, auth: str | None = None, items: list | None = None, **extra: Any) -> dict:
        body: dict[str, Any] = {
            "merchant_order_no": f"MO{next(_mo):08d}",
            "items": items if items is not None else [item()],
            "delivery_fee_fen": 0,
        }
        if auth is not None:
            body["pay_auth_no"] = auth
        body.update(extra)
        return body

    def create(self, inst: Institution, body: dict, key: str | None = None) -> Any:
        return self.yb.as_institution(
            inst, "POST", "/payment-orders", body, headers={"Idempotency-Key": key or secrets.token_hex(8)}
        )

    def order(self, inst: Institution, p: Person, purpose: str = "online_otc", **extra: Any) -> dict:
        r = self.create(inst, self.order_body(self.pay_auth(p, purpose), **extra))
        assert r.status_code == 201, r.get_json()
        return r.get_json()

    def pay(self, inst: Institution, order_id: str, key: str | None = None) -> Any:
        return self.yb.as_institution(
            inst,
            "POST",
            f"/payment-orders/{order_id}/pay",
            headers={"Idempotency-Key": key or secrets.token_hex(8)},
        )

    def refund(
        self, inst: Institution, order_id: str, body: dict | None = None, key: str | None = None
    ) -> Any:
        return self.yb.as_institution(
            inst,
            "POST",
            f"/payment-orders/{order_id}/refunds",
            body or {"reason": "退货"},
            headers={"Idempotency-Key": key or secrets.token_hex(8)},
        )

    def balance(self, p: Person) -> int:
        r = self.yb.as_user(p, "GET", "/accounts/me")
        assert r.status_code == 200, r.get_json()
        return r.get_json()["balance_fen"]

    def reconcile(self) -> dict:
        r = self.yb.admin("GET", "/ledger/reconciliation")
        assert r.status_code == 200, r.get_json()
        body = r.get_json()
        assert body["ok"], body
        return body
