"""Issue 10: a mutual-aid filing needs the member's consent and reveals nothing about them until then.

The holder files (pending), the member approves from their own activated account (active: money
flows) or declines; a pending filing expires after 7 days. An unknown psn_no is answered exactly
like a known one.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError

from family_accounts.models import MutualAidFiling
from tests.support import problem
from yibao.db import db

from .support import Family, balance, otc_order, pay_auth, pay_order

FILINGS = "/family/mutual-aid-filings"


def _unknown_psn_no() -> str:
    return "psn_" + secrets.token_urlsafe(12)  # the registry's shape, never registered


def _masked(resp: Any, typed: str) -> str:
    """The raw body with what must differ between two filings (id, times, the psn_no typed) blanked."""
    body = resp.get_data(as_text=True)
    data = resp.get_json()
    for value in (data["filing_id"], data["created_at"], data["expires_at"]):
        body = body.replace(value, "<x>")
    return body.replace(typed, "<psn_no>")


def _listed(fam: Family, who) -> list[dict]:
    resp = fam.yb.as_user(who, "GET", FILINGS)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["filings"]


class TestNoOracle:
    def test_known_unknown_resident_suspended_and_unactivated_answer_alike(self, fam: Family):
        holder = fam.adult(balance=1000)
        targets = {
            "valid member": fam.adult().psn_no,
            "unknown psn_no": _unknown_psn_no(),
            "resident": fam.adult(insurance_type="resident").psn_no,
            "suspended": fam.adult(status="suspended").psn_no,
            "not activated": fam.adult(activate=False).psn_no,
        }
        answers = {}
        for what, psn_no in targets.items():
            resp = fam.request_mutual_aid(holder, psn_no, "sibling")
            assert resp.status_code == 201, (what, resp.get_json())
            answers[what] = (_masked(resp, psn_no), sorted(resp.headers.keys()))
        reference = answers["valid member"]
        assert all(a == reference for a in answers.values()), answers
        body = json.loads(reference[0])
        assert body["status"] == "pending" and body["role"] == "holder"
        assert body["member"] == {"psn_no": "<psn_no>", "name_masked": None, "id_number_masked": None}
        # ... and the holder's list shows all five alike: nothing but the psn_no typed.
        for f in _listed(fam, holder):
            assert f["status"] == "pending"
            assert f["member"]["name_masked"] is None and f["member"]["id_number_masked"] is None

    def test_the_same_statements_run_for_a_known_and_an_unknown_psn_no(self, app, fam: Family):
        """Timing: the same work either way (same statements, in the same order)."""
        holder = fam.adult(balance=1000)
        known = fam.adult().psn_no
        engine = app.extensions["yibao.db"]["engine"]

        def statements(psn_no: str) -> list[str]:
            seen: list[str] = []

            def log(conn, cursor, statement, parameters, context, executemany):  # noqa: ARG001
                seen.append(re.sub(r"\s+", " ", statement))

            event.listen(engine, "before_cursor_execute", log)
            try:
                resp = fam.request_mutual_aid(holder, psn_no, "sibling")
            finally:
                event.remove(engine, "before_cursor_execute", log)
            assert resp.status_code == 201, resp.get_json()
            return seen

        fam.request_mutual_aid(holder, _unknown_psn_no(), "sibling")  # warm every cache once
        assert statements(known) == statements(_unknown_psn_no())

    def test_refusals_do_not_depend_on_the_member(self, fam: Family):
        holder, resident_holder = fam.adult(balance=1000), fam.adult(insurance_type="resident")
        for psn_no in (fam.adult().psn_no, _unknown_psn_no()):
            problem(fam.request_mutual_aid(holder, psn_no, "cousin"), 422, "RELATIONSHIP_NOT_ALLOWED")
            problem(fam.request_mutual_aid(resident_holder, psn_no), 422, "HOLDER_HAS_NO_PERSONAL_ACCOUNT")
            first = fam.request_mutual_aid(holder, psn_no)
            assert first.status_code == 201
            twice = problem(fam.request_mutual_aid(holder, psn_no), 409, "MUTUAL_AID_FILING_EXISTS")
            assert twice["filing_id"] == first.get_json()["filing_id"]  # the holder's own filing

    def test_nobody_sees_or_approves_a_filing_of_an_unknown_psn_no(self, fam: Family):
        holder, stranger = fam.adult(balance=1000), fam.adult()
        filing_id = fam.request_mutual_aid(holder, _unknown_psn_no()).get_json()["filing_id"]
        assert _listed(fam, stranger) == []
        for who in (holder, stranger):
            for verb in ("approve", "decline"):
                problem(
                    fam.yb.as_user(who, "POST", f"{FILINGS}/{filing_id}/{verb}"),
                    404,
                    "MUTUAL_AID_FILING_NOT_FOUND",
                )


class TestConsent:
    def test_no_member_data_before_approval(self, fam: Family):
        holder, mother = fam.adult(balance=1000), fam.adult()
        filing_id = fam.file_mutual_aid(holder, mother)
        (seen,) = _listed(fam, holder)
        assert seen["member"] == {"psn_no": mother.psn_no, "name_masked": None, "id_number_masked": None}
        # The member sees who asks (masked), and her own side.
        (hers,) = _listed(fam, mother)
        assert hers["role"] == "member" and hers["status"] == "pending"
        assert hers["holder"]["psn_no"] == holder.psn_no and hers["holder"]["name_masked"]
        assert hers["holder"]["name_masked"] != holder.name
        approved = fam.yb.as_user(mother, "POST", f"{FILINGS}/{filing_id}/approve")
        assert approved.status_code == 200, approved.get_json()
        assert approved.get_json()["status"] == "active" and approved.get_json()["approved_at"]
        (seen,) = _listed(fam, holder)
        assert seen["status"] == "active"
        assert seen["member"]["name_masked"] and seen["member"]["id_number_masked"]
        assert seen["member"]["name_masked"] != mother.name
        assert seen["member"]["id_number_masked"] != mother.id_number

    def test_money_does_not_flow_before_approval(self, fam: Family):
        mother = fam.adult(insurance_type="resident")  # no personal account of her own
        son = fam.adult(balance=5_000)
        shop = fam.yb.institution(kind="online_pharmacy")
        filing_id = fam.file_mutual_aid(son, mother, "parent")
        assert fam.holders(mother) == []
        order = otc_order(fam, shop, pay_auth(fam, mother), price=800, delivery=0)
        assert order.status_code == 201, order.get_json()
        assert (order.get_json()["mutual_aid_pay_fen"], order.get_json()["cash_pay_fen"]) == (0, 800)
        paid = pay_order(fam, shop, order.get_json()["pay_order_id"])
        assert paid.status_code == 200 and paid.get_json()["mutual_aid_pay_fen"] == 0, paid.get_json()
        assert balance(fam, son) == 5_000
        # She approves: from now on his account pays.
        assert fam.yb.as_user(mother, "POST", f"{FILINGS}/{filing_id}/approve").status_code == 200
        assert fam.holders(mother) == [fam.person_id(son)]
        order = otc_order(fam, shop, pay_auth(fam, mother), price=800, delivery=0)
        assert order.get_json()["mutual_aid_pay_fen"] == 800
        assert pay_order(fam, shop, order.get_json()["pay_order_id"]).status_code == 200
        assert balance(fam, son) == 4_200

    def test_only_the_member_approves_or_declines(self, fam: Family):
        holder, mother, stranger = fam.adult(balance=1000), fam.adult(), fam.adult()
        filing_id = fam.file_mutual_aid(holder, mother)
        before = fam.counts()
        for who in (holder, stranger):
            for verb in ("approve", "decline"):
                problem(
                    fam.yb.as_user(who, "POST", f"{FILINGS}/{filing_id}/{verb}"),
                    404,
                    "MUTUAL_AID_FILING_NOT_FOUND",
                )
        problem(
            fam.yb.as_user(mother, "POST", f"{FILINGS}/maf_nope/approve"), 404, "MUTUAL_AID_FILING_NOT_FOUND"
        )
        assert fam.counts() == before and fam.holders(mother) == []
        assert fam.yb.as_user(mother, "POST", f"{FILINGS}/{filing_id}/approve").status_code == 200
        body = problem(
            fam.yb.as_user(mother, "POST", f"{FILINGS}/{filing_id}/approve"),
            409,
            "MUTUAL_AID_FILING_NOT_PENDING",
        )
        assert body["filing_status"] == "active"
        problem(
            fam.yb.as_user(mother, "POST", f"{FILINGS}/{filing_id}/decline"),
            409,
            "MUTUAL_AID_FILING_NOT_PENDING",
        )

    def test_decline(self, fam: Family):
        holder, mother = fam.adult(balance=1000), fam.adult()
        filing_id = fam.file_mutual_aid(holder, mother)
        resp = fam.yb.as_user(mother, "POST", f"{FILINGS}/{filing_id}/decline")
        assert resp.status_code == 200, resp.get_json()
        assert resp.get_json()["status"] == "declined" and resp.get_json()["declined_at"]
        assert resp.get_json()["expires_at"] is None
        assert fam.holders(mother) == []
        (seen,) = _listed(fam, holder)
        assert seen["status"] == "declined" and seen["member"]["name_masked"] is None
        problem(
            fam.yb.as_user(mother, "POST", f"{FILINGS}/{filing_id}/approve"),
            409,
            "MUTUAL_AID_FILING_NOT_PENDING",
        )
        assert fam.file_mutual_aid(holder, mother) != filing_id  # he may ask again

    def test_holder_withdraws_a_pending_filing(self, fam: Family):
        holder, mother = fam.adult(balance=1000), fam.adult()
        filing_id = fam.file_mutual_aid(holder, mother)
        resp = fam.yb.as_user(holder, "DELETE", f"{FILINGS}/{filing_id}")
        assert resp.status_code == 200 and resp.get_json()["status"] == "withdrawn"
        assert resp.get_json()["withdrawn_by"] == "holder"
        problem(
            fam.yb.as_user(mother, "POST", f"{FILINGS}/{filing_id}/approve"),
            409,
            "MUTUAL_AID_FILING_NOT_PENDING",
        )
        assert fam.holders(mother) == []

    def test_member_withdraws_consent_and_money_stops(self, fam: Family):
        """Consent is revocable: the member ends an active filing from their own account; his account
        no longer pays for her, and both sides see that it was her decision."""
        mother = fam.adult(insurance_type="resident")  # no personal account of her own
        son = fam.adult(balance=5_000)
        shop = fam.yb.institution(kind="online_pharmacy")
        filing_id = fam.file_and_approve(son, mother, "parent")
        order = otc_order(fam, shop, pay_auth(fam, mother), price=800, delivery=0)
        assert order.get_json()["mutual_aid_pay_fen"] == 800
        resp = fam.yb.as_user(mother, "DELETE", f"{FILINGS}/{filing_id}")
        assert resp.status_code == 200, resp.get_json()
        body = resp.get_json()
        assert (body["status"], body["withdrawn_by"], body["role"]) == ("withdrawn", "member", "member")
        assert body["withdrawn_at"]
        assert fam.holders(mother) == []
        (seen,) = _listed(fam, son)
        assert (seen["status"], seen["withdrawn_by"]) == ("withdrawn", "member")
        # The order placed before she withdrew is paid under today's filings: in cash, not from his account.
        paid = pay_order(fam, shop, order.get_json()["pay_order_id"])
        assert paid.status_code == 200 and paid.get_json()["mutual_aid_pay_fen"] == 0, paid.get_json()
        assert balance(fam, son) == 5_000
        # Withdrawing again changes nothing; approving again is not possible (he must file anew).
        again = fam.yb.as_user(mother, "DELETE", f"{FILINGS}/{filing_id}")
        assert again.status_code == 200 and again.get_json()["withdrawn_at"] == body["withdrawn_at"]
        problem(
            fam.yb.as_user(mother, "POST", f"{FILINGS}/{filing_id}/approve"),
            409,
            "MUTUAL_AID_FILING_NOT_PENDING",
        )


class TestExpiry:
    def test_pending_expires_after_7_days(self, fam: Family, move_clock):
        holder, mother = fam.adult(balance=1000), fam.adult()
        filing_id = fam.file_mutual_aid(holder, mother)
        move_clock(timedelta(days=7) - timedelta(minutes=1))
        assert _listed(fam, mother)[0]["status"] == "pending"
        move_clock(timedelta(days=7, seconds=1))
        for who in (holder, mother):
            assert _listed(fam, who)[0]["status"] == "expired"  # computed on read
        body = problem(
            fam.yb.as_user(mother, "POST", f"{FILINGS}/{filing_id}/approve"),
            409,
            "MUTUAL_AID_FILING_NOT_PENDING",
        )
        assert body["filing_status"] == "expired"
        assert fam.holders(mother) == []
        assert fam.file_mutual_aid(holder, mother) != filing_id  # an expired request does not block a new one

    def test_sweep_writes_the_expiry(self, fam: Family, runner, move_clock, app):
        holder, mother = fam.adult(balance=1000), fam.adult()
        filing_id = fam.file_mutual_aid(holder, mother)
        fam.request_mutual_aid(holder, _unknown_psn_no())
        fam.file_and_approve(holder, fam.adult())  # active filings never expire
        move_clock(timedelta(days=8))
        result = runner.invoke(args=["family-sweep"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output) == {"moved": {"expired": 2}}
        assert runner.invoke(args=["family-sweep"]).output.strip() == '{"moved": {}}'
        with app.app_context(), db.uow(readonly=True) as uow:
            row = uow.session.scalar(select(MutualAidFiling).where(MutualAidFiling.filing_no == filing_id))
            assert row is not None and row.status == "expired"


class TestConstraints:
    """What the database refuses even if the application let it through."""

    def _ids(self, fam: Family, n: int) -> list[int]:
        return [fam.person_id(fam.adult(activate=False)) for _ in range(n)]

    def _insert(self, app, **kw: Any) -> None:
        now = datetime.now(UTC)
        row = {
            "filing_no": "maf_" + secrets.token_hex(6),
            "member_psn_no": "psn_" + secrets.token_urlsafe(12),
            "relationship": "parent",
            "status": "pending",
            "created_at": now,
            "expires_at": now + timedelta(days=7),
            **kw,
        }
        with app.app_context(), db.uow() as uow:
            uow.session.add(MutualAidFiling(**row))
            uow.session.flush()
            uow.commit()

    def test_an_unknown_member_can_never_be_active(self, app, fam: Family):
        (holder,) = self._ids(fam, 1)
        now = datetime.now(UTC)
        with pytest.raises(IntegrityError):
            self._insert(
                app, holder_person_id=holder, member_person_id=None, status="active", approved_at=now
            )
        with pytest.raises(IntegrityError):
            self._insert(app, holder_person_id=holder, member_person_id=None, status="declined")

    def test_active_needs_approval_and_pending_an_expiry(self, app, fam: Family):
        holder, member = self._ids(fam, 2)
        with pytest.raises(IntegrityError):
            self._insert(app, holder_person_id=holder, member_person_id=member, status="active")
        with pytest.raises(IntegrityError):
            self._insert(app, holder_person_id=holder, member_person_id=member, expires_at=None)
        with pytest.raises(IntegrityError):
            self._insert(app, holder_person_id=holder, member_person_id=member, status="lost")

    def test_one_live_filing_per_holder_and_psn_no(self, app, fam: Family):
        holder, member = self._ids(fam, 2)
        psn_no = "psn_" + secrets.token_urlsafe(12)
        self._insert(app, holder_person_id=holder, member_person_id=None, member_psn_no=psn_no)
        with pytest.raises(IntegrityError):
            self._insert(app, holder_person_id=holder, member_person_id=None, member_psn_no=psn_no)
        self._insert(app, holder_person_id=holder, member_person_id=member)
        with pytest.raises(IntegrityError):  # pending and active alike
            self._insert(
                app,
                holder_person_id=holder,
                member_person_id=member,
                status="active",
                approved_at=datetime.now(UTC),
                expires_at=None,
            )
