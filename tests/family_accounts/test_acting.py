"""acting_permission and mutual_aid_holders: the interface voucher/ and payments/ call on every request."""

from __future__ import annotations

from datetime import timedelta

import pytest

from family_accounts import clock
from family_accounts.acting import ACTIONS, acting_permission
from tests.support import problem
from yibao.db import db

from .support import Family


@pytest.mark.parametrize("action", ACTIONS)
def test_each_action_for_each_state(fam: Family, action):
    member = fam.adult()
    active, pending, ended, declined, stranger = (fam.adult() for _ in range(5))
    fam.active(active, member)
    fam.pending(pending, member)
    fam.ended(ended, member)
    declined_id = fam.pending(declined, member)
    fam.yb.as_user(member, "POST", f"/family/bindings/{declined_id}/decline")
    assert fam.may(active, member.psn_no, action) == "ok"
    assert fam.may(member, member.psn_no, action) == "ok"  # acting for oneself
    assert fam.may(pending, member.psn_no, action) == "BINDING_NOT_ACTIVE"
    assert fam.may(ended, member.psn_no, action) == "NOT_PERMITTED"
    assert fam.may(declined, member.psn_no, action) == "NOT_PERMITTED"
    assert fam.may(stranger, member.psn_no, action) == "NOT_PERMITTED"


def test_returns_the_member_person_id(fam: Family):
    son, mother = fam.adult(), fam.adult()
    fam.active(son, mother)
    with fam.app.app_context(), db.uow(readonly=True) as uow:
        got = acting_permission(
            uow, actor_person_id=fam.person_id(son), member_psn_no=mother.psn_no, action="pay"
        )
    assert got == fam.person_id(mother)


def test_binding_is_one_way(fam: Family):
    son, mother = fam.adult(), fam.adult()
    fam.active(son, mother)
    assert fam.may(mother, son.psn_no) == "NOT_PERMITTED"


def test_unknown_psn_no_and_unknown_action(fam: Family):
    me = fam.adult()
    assert fam.may(me, "psn_doesnotexist") == "NOT_PERMITTED"
    with pytest.raises(ValueError):
        fam.may(me, me.psn_no, "transfer_all_money")


def test_suspended_member(fam: Family):
    son, mother = fam.adult(), fam.adult()
    fam.active(son, mother)
    assert fam.yb.admin("PATCH", f"/persons/{mother.psn_no}", {"status": "suspended"}).status_code == 200
    assert fam.may(son, mother.psn_no) == "PERSON_SUSPENDED"


def test_suspended_actor(fam: Family):
    son, mother = fam.adult(), fam.adult()
    fam.active(son, mother)
    assert fam.yb.admin("PATCH", f"/persons/{son.psn_no}", {"status": "suspended"}).status_code == 200
    for action in ACTIONS:
        assert fam.may(son, mother.psn_no, action) == "PERSON_SUSPENDED"


def test_pending_that_expired_unobserved_is_refused(fam: Family, move_clock):
    """No read has recorded the expiry yet: acting_permission still goes by the clock."""
    son, mother = fam.adult(), fam.adult()
    fam.pending(son, mother)
    move_clock(timedelta(days=8))
    assert fam.may(son, mother.psn_no) == "NOT_PERMITTED"


def _child_turning_17_in(fam: Family, days: int):
    born = clock.birthday(clock.today() + timedelta(days=days), -17)
    return fam.yb.person(insurance_type="resident", birth=born.strftime("%Y%m%d"))


class TestChildTurns17:
    """A guardian binding becomes pending the child's approval on their 17th birthday.

    Until the child approves, acting_permission answers BINDING_NOT_ACTIVE; the child has 7 days
    from the birthday, after which the binding expires (NOT_PERMITTED). The child may also decline.
    """

    def test_becomes_pending_on_the_birthday(self, fam: Family, move_clock):
        parent = fam.adult()
        child = _child_turning_17_in(fam, 10)
        binding_id = fam.bind_child(parent, child).get_json()["binding_id"]
        move_clock(timedelta(days=9))
        assert fam.may(parent, child.psn_no) == "ok"
        move_clock(timedelta(days=10, hours=1))
        for action in ACTIONS:
            assert fam.may(parent, child.psn_no, action) == "BINDING_NOT_ACTIVE"
        for who, role in ((parent, "binder"), (child, "member")):
            listed = fam.yb.as_user(who, "GET", "/family/bindings").get_json()["bindings"]
            assert len(listed) == 1 and listed[0]["role"] == role
            assert listed[0]["status"] == "pending" and listed[0]["pending_reason"] == "came_of_age"
            assert listed[0]["expires_at"]
        events = fam.yb.as_user(child, "GET", f"/family/bindings/{binding_id}/events").get_json()["events"]
        assert [(e["event"], e["actor_role"], e["status_after"]) for e in events] == [
            ("guardian_bound", "binder", "active"),
            ("came_of_age", "system", "pending"),
        ]

    def test_child_approves_and_it_continues(self, fam: Family, move_clock):
        parent = fam.adult()
        child = _child_turning_17_in(fam, 3)
        binding_id = fam.bind_child(parent, child).get_json()["binding_id"]
        move_clock(timedelta(days=4))
        problem(
            fam.yb.as_user(parent, "POST", f"/family/bindings/{binding_id}/approve"), 403, "NOT_PERMITTED"
        )
        resp = fam.yb.as_user(child, "POST", f"/family/bindings/{binding_id}/approve")
        assert resp.status_code == 200 and resp.get_json()["status"] == "active"
        assert fam.may(parent, child.psn_no) == "ok"
        move_clock(timedelta(days=400))  # consent is for good: later birthdays change nothing
        assert fam.may(parent, child.psn_no) == "ok"

    def test_child_declines(self, fam: Family, move_clock):
        parent = fam.adult()
        child = _child_turning_17_in(fam, 3)
        binding_id = fam.bind_child(parent, child).get_json()["binding_id"]
        move_clock(timedelta(days=5))
        resp = fam.yb.as_user(child, "POST", f"/family/bindings/{binding_id}/decline")
        assert resp.status_code == 200 and resp.get_json()["status"] == "declined"
        assert fam.may(parent, child.psn_no) == "NOT_PERMITTED"

    def test_silence_expires_it_seven_days_after_the_birthday(self, fam: Family, move_clock):
        parent = fam.adult()
        child = _child_turning_17_in(fam, 2)
        binding_id = fam.bind_child(parent, child).get_json()["binding_id"]
        move_clock(timedelta(days=2 + 6))
        assert fam.may(parent, child.psn_no) == "BINDING_NOT_ACTIVE"
        move_clock(timedelta(days=2 + 8))
        assert fam.may(parent, child.psn_no) == "NOT_PERMITTED"
        got = fam.yb.as_user(parent, "GET", f"/family/bindings/{binding_id}").get_json()
        assert got["status"] == "expired" and got["ended_by"] == "system"
        events = fam.yb.as_user(parent, "GET", "/family/events").get_json()["events"]
        assert [e["event"] for e in events] == ["guardian_bound", "came_of_age", "expired"]
        problem(
            fam.yb.as_user(child, "POST", f"/family/bindings/{binding_id}/approve"),
            409,
            "BINDING_NOT_PENDING",
        )

    def test_parent_cannot_rebind_a_17_year_old_with_a_guardian_proof(self, fam: Family, move_clock):
        parent = fam.adult()
        child = _child_turning_17_in(fam, 1)
        proof = fam.guardian_proof(parent, child)
        move_clock(timedelta(days=2))
        before = fam.counts()
        problem(fam.bind(parent, child, "child", guardian_proof=proof), 422, "GUARDIAN_PROOF_NOT_APPLICABLE")
        assert fam.counts() == before
        assert fam.bind(parent, child, "child").get_json()["status"] == "pending"


class TestMutualAidHolders:
    def test_holders_in_filing_order_and_withdrawal_stops_at_once(self, fam: Family):
        mother = fam.adult(insurance_type="resident")
        son, daughter = fam.adult(balance=5000), fam.adult(balance=3000)
        assert fam.holders(mother) == []
        first = fam.file_and_approve(son, mother, "parent")
        fam.file_and_approve(daughter, mother, "parent")
        assert fam.holders(mother) == [fam.person_id(son), fam.person_id(daughter)]
        resp = fam.yb.as_user(son, "DELETE", f"/family/mutual-aid-filings/{first}")
        assert resp.status_code == 200 and resp.get_json()["status"] == "withdrawn"
        assert fam.holders(mother) == [fam.person_id(daughter)]
        # Withdrawing again changes nothing; filing anew puts the son after his sister.
        before = fam.counts()
        assert fam.yb.as_user(son, "DELETE", f"/family/mutual-aid-filings/{first}").status_code == 200
        assert fam.counts() == before
        fam.file_and_approve(son, mother, "parent")
        assert fam.holders(mother) == [fam.person_id(daughter), fam.person_id(son)]

    def test_suspended_holder_is_skipped(self, fam: Family):
        mother, son = fam.adult(), fam.adult(balance=100)
        fam.file_and_approve(son, mother)
        fam.yb.admin("PATCH", f"/persons/{son.psn_no}", {"status": "suspended"})
        assert fam.holders(mother) == []

    def test_filings_do_not_need_a_binding_and_grant_no_acting(self, fam: Family):
        """Mutual aid lets money flow; it does not let the holder show the member's code."""
        mother, son = fam.adult(), fam.adult(balance=100)
        fam.file_and_approve(son, mother)
        assert fam.may(son, mother.psn_no) == "NOT_PERMITTED"

    def test_both_sides_list_the_filing(self, fam: Family):
        grandma, grandson = fam.adult(birth="19450101"), fam.adult(balance=100)
        filing_id = fam.file_and_approve(grandson, grandma, "grandparent")
        for who, role in ((grandson, "holder"), (grandma, "member")):
            listed = fam.yb.as_user(who, "GET", "/family/mutual-aid-filings").get_json()["filings"]
            assert [(f["filing_id"], f["role"], f["relationship"]) for f in listed] == [
                (filing_id, role, "grandparent")
            ]
            assert listed[0]["member"]["psn_no"] == grandma.psn_no

    @pytest.mark.parametrize(
        "relationship", ["spouse", "parent", "child", "sibling", "grandparent", "grandchild"]
    )
    def test_every_close_relative_is_allowed(self, fam: Family, relationship):
        holder, relative = fam.adult(balance=100), fam.adult()
        fam.file_and_approve(holder, relative, relationship)
        assert fam.holders(relative) == [fam.person_id(holder)]


def test_sweep_records_due_changes_nobody_looked_at(fam: Family, runner, move_clock):
    parent, son, mother = fam.adult(), fam.adult(), fam.adult()
    child = _child_turning_17_in(fam, 2)
    fam.bind_child(parent, child)
    pending_id = fam.pending(son, mother)
    move_clock(timedelta(days=3))
    result = runner.invoke(args=["family-sweep"])
    assert result.exit_code == 0, result.output
    assert '"moved": {"pending": 1}' in result.output
    move_clock(timedelta(days=8))
    result = runner.invoke(args=["family-sweep"])
    assert '"moved": {"expired": 1}' in result.output  # the son's request (the ward still has 2 days)
    assert runner.invoke(args=["family-sweep"]).output.strip() == '{"moved": {}}'
    events = fam.yb.as_user(mother, "GET", f"/family/bindings/{pending_id}/events").get_json()["events"]
    assert [e["event"] for e in events] == ["requested", "expired"]
