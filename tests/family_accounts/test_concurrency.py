"""The five-member limit under concurrent requests, and the constraints that back it."""

from __future__ import annotations

import secrets
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


# --- mutual-aid filings: one live filing per holder and psn_no, across worker processes ----------


def _race_filings(url: str, holder, psn_no: str) -> list:
    """N POSTs of the same filing over HTTP, released at once."""
    import requests

    barrier = threading.Barrier(N)
    results: list = [None] * N

    def run(i: int) -> None:
        barrier.wait()
        resp = requests.post(
            f"{url}/api/v1/family/mutual-aid-filings",
            json={"member_psn_no": psn_no, "relationship": "sibling"},
            headers=holder.auth,
            timeout=60,
        )
        results[i] = (resp.status_code, resp.json().get("code") if resp.status_code >= 400 else None)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    return results


@pytest.mark.slow
def test_concurrent_filings_in_several_processes_give_one(app, fam: Family, tmp_path):
    """Racing POSTs of one holder for one psn_no, through a 4-worker gunicorn: one pending filing,
    the rest MUTUAL_AID_FILING_EXISTS, alike for a known and an unknown psn_no."""
    from family_accounts.models import MutualAidFiling
    from tests import servers
    from tests.support import ADMIN_TOKEN, TEST_SECRET

    holder = fam.adult(balance=1000)
    targets = [fam.adult().psn_no, "psn_" + secrets.token_urlsafe(12)]
    settings = {
        "DATABASE_URL": app.config["DATABASE_URL"],
        "REDIS_URL": app.config["REDIS_URL"],
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "SECRET_KEY": TEST_SECRET,
    }
    with servers.gunicorn(settings, workers=4, log_dir=tmp_path) as url:
        for psn_no in targets:
            results = _race_filings(url, holder, psn_no)
            assert sorted(results, key=str) == sorted(
                [(201, None)] + [(409, "MUTUAL_AID_FILING_EXISTS")] * (N - 1), key=str
            ), results
    with app.app_context(), db.uow(readonly=True) as uow:
        rows = uow.session.scalars(select(MutualAidFiling)).all()
        assert sorted((f.member_psn_no, f.status) for f in rows) == sorted((p, "pending") for p in targets)
