"""Family test helpers: relatives of a given age, bindings and filings driven through the API, row counts."""

from __future__ import annotations

import secrets
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select

from family_accounts import clock
from family_accounts.models import BindingEvent, FamilyBinding, MutualAidFiling
from tests.support import Institution, Person, Yb


def birth_for_age(years: int, *, days_after_birthday: int = 30, today: date | None = None) -> str:
    """A YYYYMMDD birth date giving this age today (China calendar), `days_after_birthday` past a birthday."""
    today = today or clock.today()
    last_birthday = today - timedelta(days=days_after_birthday)
    born = clock.birthday(last_birthday, -years)
    return born.strftime("%Y%m%d")


class Family:
    """Drives the family endpoints."""

    def __init__(self, yb: Yb, app: Any) -> None:
        self.yb = yb
        self.app = app

    def adult(self, **kw: Any) -> Person:
        return self.yb.person(birth=kw.pop("birth", "19800101"), **kw)

    def child(self, age: int = 10, **kw: Any) -> Person:
        return self.yb.person(
            insurance_type=kw.pop("insurance_type", "resident"), birth=birth_for_age(age), **kw
        )

    def bind(self, binder: Person, member: Person, relationship: str = "parent", **extra: Any) -> Any:
        body = {
            "member_id_number": member.id_number,
            "member_name": member.name,
            "relationship": relationship,
            **extra,
        }
        return self.yb.as_user(binder, "POST", "/family/bindings", body)

    def guardian_proof(self, guardian: Person, child: Person) -> str:
        return self.yb.proof(guardian.id_number, guardian.name, guardian_of=child.id_number)

    def bind_child(self, parent: Person, child: Person, relationship: str = "child") -> Any:
        return self.bind(parent, child, relationship, guardian_proof=self.guardian_proof(parent, child))

    def pending(self, binder: Person, member: Person, relationship: str = "parent") -> str:
        resp = self.bind(binder, member, relationship)
        assert resp.status_code == 201, resp.get_json()
        assert resp.get_json()["status"] == "pending"
        return resp.get_json()["binding_id"]

    def active(self, binder: Person, member: Person, relationship: str = "parent") -> str:
        binding_id = self.pending(binder, member, relationship)
        resp = self.yb.as_user(member, "POST", f"/family/bindings/{binding_id}/approve")
        assert resp.status_code == 200, resp.get_json()
        assert resp.get_json()["status"] == "active"
        return binding_id

    def ended(self, binder: Person, member: Person, relationship: str = "parent") -> str:
        binding_id = self.active(binder, member, relationship)
        resp = self.yb.as_user(binder, "DELETE", f"/family/bindings/{binding_id}")
        assert resp.status_code == 200, resp.get_json()
        return binding_id

    def request_mutual_aid(self, holder: Person, member_psn_no: str, relationship: str = "parent") -> Any:
        """POST a filing as the holder; the raw response."""
        return self.yb.as_user(
            holder,
            "POST",
            "/family/mutual-aid-filings",
            {"member_psn_no": member_psn_no, "relationship": relationship},
        )

    def file_mutual_aid(self, holder: Person, member: Person, relationship: str = "parent") -> str:
        """A pending filing (the member has not approved yet): its id."""
        resp = self.request_mutual_aid(holder, member.psn_no, relationship)
        assert resp.status_code == 201, resp.get_json()
        assert resp.get_json()["status"] == "pending"
        return resp.get_json()["filing_id"]

    def file_and_approve(self, holder: Person, member: Person, relationship: str = "parent") -> str:
        """An active filing: the holder files, the member approves from their own account."""
        filing_id = self.file_mutual_aid(holder, member, relationship)
        resp = self.yb.as_user(member, "POST", f"/family/mutual-aid-filings/{filing_id}/approve")
        assert resp.status_code == 200, resp.get_json()
        assert resp.get_json()["status"] == "active"
        return filing_id

    def person_id(self, p: Person) -> int:
        from yibao.db import db
        from yibao.registry.services import person_by_psn_no

        with self.app.app_context(), db.uow(readonly=True) as uow:
            row = person_by_psn_no(uow, p.psn_no)
            assert row is not None
            return row.id

    def may(self, actor: Person, member_psn_no: str, action: str = "show_voucher") -> str:
        """acting_permission through the service interface: 'ok' or the error code."""
        from family_accounts.acting import acting_permission
        from yibao.db import db
        from yibao.errors import AppError

        actor_id = self.person_id(actor)
        with self.app.app_context(), db.uow(readonly=True) as uow:
            try:
                member_id = acting_permission(
                    uow, actor_person_id=actor_id, member_psn_no=member_psn_no, action=action
                )
            except AppError as exc:
                return exc.code
        assert isinstance(member_id, int)
        return "ok"

    def holders(self, member: Person) -> list[int]:
        from family_accounts.acting import mutual_aid_holders
        from yibao.db import db

        member_id = self.person_id(member)
        with self.app.app_context(), db.uow(readonly=True) as uow:
            return mutual_aid_holders(uow, member_person_id=member_id)

    def counts(self) -> dict[str, int]:
        """Rows in each family table: 'nothing was written' means these did not change."""
        from yibao.db import db

        with self.app.app_context(), db.uow(readonly=True) as uow:
            return {
                model.__tablename__: uow.session.scalar(select(func.count()).select_from(model))
                for model in (FamilyBinding, BindingEvent, MutualAidFiling)
            }


# --- money through payments/, over HTTP as a client would ---------------------------------------


def otc_order(fam: Family, shop: Institution, pay_auth_no: str, price: int, delivery: int) -> Any:
    return fam.yb.as_institution(
        shop,
        "POST",
        "/payment-orders",
        {
            "pay_auth_no": pay_auth_no,
            "merchant_order_no": "MO" + secrets.token_hex(6),
            "items": [
                {
                    "drug_code": "XA01",
                    "drug_name": "布洛芬缓释胶囊",
                    "otc": True,
                    "quantity": 1,
                    "unit_price_fen": price,
                    "trace_codes": [],
                }
            ],
            "delivery_fee_fen": delivery,
        },
        headers={"Idempotency-Key": secrets.token_hex(8)},
    )


def pay_order(fam: Family, shop: Institution, order_id: str) -> Any:
    return fam.yb.as_institution(
        shop, "POST", f"/payment-orders/{order_id}/pay", headers={"Idempotency-Key": secrets.token_hex(8)}
    )


def balance(fam: Family, p: Person, on_behalf_of: str | None = None) -> int:
    query = f"on_behalf_of={on_behalf_of}" if on_behalf_of else ""
    resp = fam.yb.as_user(p, "GET", "/accounts/me", query_string=query)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["balance_fen"]


def pay_auth(fam: Family, actor: Person, member: Person | None = None) -> str:
    body: dict[str, Any] = {"purpose": "online_otc"}
    if member is not None:
        body["on_behalf_of"] = member.psn_no
    resp = fam.yb.as_user(actor, "POST", "/pay-authorizations", body)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["pay_auth_no"]
