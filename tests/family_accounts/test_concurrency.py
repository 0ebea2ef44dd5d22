"""The five-member limit under concurrent requests, and the constraints that back it."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from family_accounts.models import FamilyBinding
from yibao.db import db, utcnow

from .support import Family

N = 10


def _race(app, requests):
    """Run each (person, body) POST in its own thread with its own client, all released at once."""
    barrier = threading.Barrier(len(requests))
    results: list = [None] * len(requests)

    def run(i, person, body):
        client = app.test_client()
        barrier.wait()
        resp = client.post("/api/v1/family/bindings", json=body, headers=person.auth)
        results[i] = (resp.status_code, (resp.get_json() or {}).get("code"))

    threads = [threading.Thread(target=run, args=(i, p, b)) for i, (p, b) in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def _body(member, relationship="sibling", **extra):
    return {
        "member_id_number": member.id_number,
        "member_name": member.name,
        "relationship": relationship,
        **extra,
    }


def test_concurrent_requests_bind_at_most_five(app, fam: Family):
    me = fam.adult()
    relatives = [fam.adult() for _ in range(N)]
    results = _race(app, [(me, _body(r)) for r in relatives])
    assert sorted(results, key=str) == sorted(
        [(201, None)] * 5 + [(409, "FAMILY_LIMIT_REACHED")] * (N - 5), key=str
    ), results
    with app.app_context(), db.uow(readonly=True) as uow:
        rows = uow.session.scalars(
            select(FamilyBinding).where(FamilyBinding.status.in_(["pending", "active"]))
        )
        assert sorted(b.slot for b in rows) == [1, 2, 3, 4, 5]
    assert fam.counts()["binding_events"] == 5


def test_without_the_row_lock_the_constraints_still_cap_at_five(app, fam: Family, monkeypatch):
    """Take the binder lock away: racing writers may now collide on a slot, but never exceed five."""
    from family_accounts import bindings
    from yibao.registry.models import Person as PersonRow

    monkeypatch.setattr(bindings, "lock_person", lambda uow, pid: uow.session.get(PersonRow, pid))
    me = fam.adult()
    relatives = [fam.adult() for _ in range(N)]
    results = _race(app, [(me, _body(r)) for r in relatives])
    created = sum(1 for r in results if r == (201, None))
    assert 1 <= created <= 5, results
    assert all(r in {(201, None), (409, "FAMILY_LIMIT_REACHED")} for r in results), results
    with app.app_context(), db.uow(readonly=True) as uow:
        live = uow.session.scalars(
            select(FamilyBinding).where(FamilyBinding.status.in_(["pending", "active"]))
        )
        assert len({b.slot for b in live}) == created
    assert fam.counts()["binding_events"] == created


def test_concurrent_children_with_guardian_proofs(app, fam: Family):
    """Guardian bindings take the same slots: spent proofs and rows never exceed five."""
    me = fam.adult()
    children = [fam.child(6) for _ in range(7)]
    requests = [(me, _body(c, "child", guardian_proof=fam.guardian_proof(me, c))) for c in children]
    results = _race(app, requests)
    assert sum(1 for r in results if r == (201, None)) == 5, results
    assert sum(1 for r in results if r == (409, "FAMILY_LIMIT_REACHED")) == 2, results


def test_concurrent_duplicates_give_one_binding(app, fam: Family):
    me, mother = fam.adult(), fam.adult()
    results = _race(app, [(me, _body(mother, "parent"))] * 6)
    assert sorted(results, key=str) == sorted([(201, None)] + [(409, "BINDING_EXISTS")] * 5, key=str), results


def test_several_binders_of_one_member_do_not_block_each_other(app, fam: Family):
    mother = fam.adult()
    children = [fam.adult() for _ in range(7)]  # more than five binders is fine: the limit is per binder
    results = _race(app, [(c, _body(mother, "parent")) for c in children])
    assert results == [(201, None)] * 7


def _binding(binder_id, member_id, slot, status="pending", no=None):
    now = utcnow()
    return FamilyBinding(
        binding_no=no or f"fb_test_{binder_id}_{member_id}_{slot}",
        binder_person_id=binder_id,
        member_person_id=member_id,
        relationship="sibling",
        basis="consent",
        status=status,
        slot=slot,
        expires_at=now + timedelta(days=7),
        created_at=now,
        updated_at=now,
    )


class TestConstraints:
    """What stops a sixth live binding even if two writers raced past the application's count."""

    def _ids(self, fam, n):
        return [fam.person_id(fam.adult(activate=False)) for _ in range(n)]

    def _insert(self, app, *rows):
        with app.app_context(), db.uow() as uow:
            uow.session.add_all(rows)
            uow.session.flush()
            uow.commit()

    def test_slot_six_is_refused(self, app, fam):
        a, b = self._ids(fam, 2)
        with pytest.raises(IntegrityError):
            self._insert(app, _binding(a, b, 6))

    def test_one_slot_once(self, app, fam):
        a, b, c = self._ids(fam, 3)
        self._insert(app, _binding(a, b, 1))
        with pytest.raises(IntegrityError):
            self._insert(app, _binding(a, c, 1))

    def test_one_live_binding_per_pair(self, app, fam):
        a, b = self._ids(fam, 2)
        self._insert(app, _binding(a, b, 1))
        with pytest.raises(IntegrityError):
            self._insert(app, _binding(a, b, 2))

    def test_ended_rows_hold_no_slot(self, app, fam):
        a, b = self._ids(fam, 2)
        with pytest.raises(IntegrityError):
            self._insert(app, _binding(a, b, 1, status="ended"))
        self._insert(
            app, _binding(a, b, None, status="ended"), _binding(a, b, None, status="ended", no="fb_x2")
        )

    def test_not_self(self, app, fam):
        (a,) = self._ids(fam, 1)
        with pytest.raises(IntegrityError):
            self._insert(app, _binding(a, a, 1))
