"""Family: a binder shows a member's code (RFC 8693 `act`), and reads the member's usage.

family_accounts.acting.acting_permission is the only interface used; these tests replace it with
a table of allowed (actor, member, action) so the voucher side is tested on its own.
"""

from __future__ import annotations

import json

import pytest

from tests.support import problem
from voucher import qr
from voucher import token as tk
from voucher.models import EcToken, UsageRecord
from yibao.db import db
from yibao.errors import AppError


@pytest.fixture
def grants(monkeypatch, app):
    """Allowed (actor psn_no, member psn_no, action) triples; anything else is NOT_PERMITTED."""
    allowed: set[tuple[str, str, str]] = set()
    from yibao.registry import services as registry

    def acting_permission(uow, *, actor_person_id, member_psn_no, action):
        actor = registry.person_by_id(uow, actor_person_id)
        member = registry.person_by_psn_no(uow, member_psn_no)
        if member is None or (actor.psn_no, member_psn_no, action) not in allowed:
            raise AppError("NOT_PERMITTED")
        return member.id

    monkeypatch.setattr("family_accounts.acting.acting_permission", acting_permission)
    return allowed


def _claims(code):
    return json.loads(tk.b64u_decode(code["token"].split(".")[1]))


def test_binder_shows_members_code(app, yb, vd, grants):
    binder, member = yb.person(), yb.person(activate=False)
    grants.add((binder.psn_no, member.psn_no, "show_voucher"))
    code = vd.issue(binder, on_behalf_of=member.psn_no)
    claims = _claims(code)
    assert claims["sub"] == _sub(app, member) and claims["act"] == {"sub": vd.sub_of(binder)}
    assert member.psn_no not in code["token"] and binder.psn_no not in code["token"]
    # a family code is 25 bytes longer: it fits version 11 at level M
    assert qr.version_for(code["qr_content"]) <= 11
    inst = yb.institution()
    resp = vd.scan(inst, code["qr_content"])
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["person"]["psn_no"] == member.psn_no
    with app.app_context(), db.uow(readonly=True) as uow:
        ec = uow.session.query(EcToken).one()
        audit = uow.session.query(UsageRecord).one()
        binder_id = _pid(uow, binder.psn_no)
        assert ec.actor_person_id == binder_id and audit.actor_person_id == binder_id
        assert ec.person_id == _pid(uow, member.psn_no)


def test_members_usage_shows_the_binder(app, yb, vd, grants):
    binder, member = yb.person(), yb.person()
    grants.add((binder.psn_no, member.psn_no, "show_voucher"))
    inst = yb.institution()
    vd.scan(inst, vd.issue(binder, on_behalf_of=member.psn_no)["qr_content"])
    vd.scan(inst, vd.issue(member)["qr_content"])
    items = yb.as_user(member, "GET", "/vouchers/usage").get_json()["items"]
    assert [i["acted_by"] for i in items] == [None, binder.psn_no]
    # the binder's own history is theirs only
    assert yb.as_user(binder, "GET", "/vouchers/usage").get_json()["items"] == []


def test_binder_reads_members_usage_only_with_read_usage(yb, vd, grants):
    binder, member = yb.person(), yb.person()
    inst = yb.institution()
    vd.scan(inst, vd.issue(member)["qr_content"])
    problem(yb.as_user(binder, "GET", f"/vouchers/usage?psn_no={member.psn_no}"), 403, "NOT_PERMITTED")
    grants.add((binder.psn_no, member.psn_no, "read_usage"))
    resp = yb.as_user(binder, "GET", f"/vouchers/usage?psn_no={member.psn_no}")
    assert resp.status_code == 200 and len(resp.get_json()["items"]) == 1


def test_without_show_voucher_no_family_code(yb, vd, grants):
    binder, member = yb.person(), yb.person()
    grants.add((binder.psn_no, member.psn_no, "read_usage"))
    problem(yb.as_user(binder, "POST", "/vouchers", {"on_behalf_of": member.psn_no}), 403, "NOT_PERMITTED")


def test_binding_ended_after_issuance_voids_the_code(app, yb, vd, grants):
    binder, member = yb.person(), yb.person()
    grants.add((binder.psn_no, member.psn_no, "show_voucher"))
    code = vd.issue(binder, on_behalf_of=member.psn_no)
    grants.clear()
    problem(vd.scan(yb.institution(), code["qr_content"]), 422, "VOUCHER_REVOKED")


def test_binder_revocation_voids_codes_shown_for_members(yb, vd, grants):
    binder, member = yb.person(), yb.person()
    grants.add((binder.psn_no, member.psn_no, "show_voucher"))
    code = vd.issue(binder, on_behalf_of=member.psn_no)
    yb.as_user(binder, "POST", "/vouchers/revocations")
    problem(vd.scan(yb.institution(), code["qr_content"]), 422, "VOUCHER_REVOKED")


def test_member_revocation_voids_codes_the_binder_shows(yb, vd, grants):
    binder, member = yb.person(), yb.person()
    grants.add((binder.psn_no, member.psn_no, "show_voucher"))
    code = vd.issue(binder, on_behalf_of=member.psn_no)
    yb.as_user(member, "POST", "/vouchers/revocations")
    problem(vd.scan(yb.institution(), code["qr_content"]), 422, "VOUCHER_REVOKED")


def _set_status(app, p, status):
    from yibao.registry import services as registry

    with app.app_context(), db.uow() as uow:
        registry.set_person_status(uow, p.psn_no, status)
        uow.commit()


def test_suspended_binder_voids_family_codes_as_revoked(app, yb, vd, grants):
    """A family code whose binder is suspended keeps its answer: 422 VOUCHER_REVOKED (issue 10.5)."""
    binder, member = yb.person(), yb.person()
    grants.add((binder.psn_no, member.psn_no, "show_voucher"))
    code = vd.issue(binder, on_behalf_of=member.psn_no)
    _set_status(app, binder, "suspended")
    problem(vd.scan(yb.institution(), code["qr_content"]), 422, "VOUCHER_REVOKED")
    with app.app_context(), db.uow(readonly=True) as uow:
        rows = uow.session.query(UsageRecord).all()
        assert [(r.result, r.code) for r in rows] == [("refused", "VOUCHER_REVOKED")]


def test_suspended_member_family_code_answers_person_suspended(app, yb, vd, grants):
    binder, member = yb.person(), yb.person()
    grants.add((binder.psn_no, member.psn_no, "show_voucher"))
    code = vd.issue(binder, on_behalf_of=member.psn_no)
    _set_status(app, member, "suspended")
    inst = yb.institution()
    problem(vd.scan(inst, code["qr_content"]), 403, "PERSON_SUSPENDED")
    problem(vd.scan(inst, code["qr_content"]), 409, "VOUCHER_ALREADY_USED")


def test_suspended_member_gets_no_code(app, yb, vd, grants):
    from yibao.registry import services as registry

    binder, member = yb.person(), yb.person()
    grants.add((binder.psn_no, member.psn_no, "show_voucher"))
    with app.app_context(), db.uow() as uow:
        registry.set_person_status(uow, member.psn_no, "suspended")
        uow.commit()
    problem(yb.as_user(binder, "POST", "/vouchers", {"on_behalf_of": member.psn_no}), 403, "PERSON_SUSPENDED")


def _pid(uow, psn_no):
    from yibao.registry import services as registry

    return registry.person_by_psn_no(uow, psn_no).id


def _sub(app, p):
    from voucher.models import Subject

    with app.app_context(), db.uow(readonly=True) as uow:
        return uow.session.get(Subject, _pid(uow, p.psn_no)).sub
