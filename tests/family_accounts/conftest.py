"""Family test helpers: relatives of a given age, bindings driven through the API, row counts, a clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from family_accounts import clock
from family_accounts.models import BindingEvent, FamilyBinding, MutualAidFiling
from tests.support import Person, Yb


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

    def file_mutual_aid(self, holder: Person, member: Person, relationship: str = "parent") -> str:
        resp = self.yb.as_user(
            holder,
            "POST",
            "/family/mutual-aid-filings",
            {"member_psn_no": member.psn_no, "relationship": relationship},
        )
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()["filing_id"]

    def person_id(self, p: Person) -> int:
        from yibao.db import db
        from yibao.registry.services import person_by_psn_no

        with self.app.app_context(), db.uow(readonly=True) as uow:
            row = person_by_psn_no(uow, p.psn_no)
            assert row is not None
            return row.id

    def may(self, actor: Person, member_psn_no: str, action: str = "show_voucher") -> str:
        """acting_permission through the service interface: 'ok' or the error code."""
        from family_accounts.services import acting_permission
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
        from family_accounts.services import mutual_aid_holders
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


@pytest.fixture
def fam(yb: Yb, app: Any) -> Family:
    return Family(yb, app)


@pytest.fixture
def move_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[timedelta], datetime]:
    """Move the family clock forward by a delta from the real now; returns the new now."""

    def move(delta: timedelta) -> datetime:
        target = clock.utcnow() + delta
        monkeypatch.setattr(clock, "now", lambda: target)
        return target

    return move
