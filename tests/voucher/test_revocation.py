"""Revocation: lost phone, suspension, re-activation on a new device."""

from __future__ import annotations

import time

from tests.support import problem
from voucher import claims, ec_tokens, subjects
from voucher.models import EcToken, UsageRecord, VoucherUse
from yibao.db import db

from .support import count_rows


def test_revocation_voids_every_outstanding_code(app, yb, vd):
    p, inst = yb.person(), yb.institution()
    codes = [vd.issue(p) for _ in range(3)]
    resp = yb.as_user(p, "POST", "/vouchers/revocations")
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["revoked_before"]
    for code in codes:
        problem(vd.scan(inst, code["qr_content"]), 422, "VOUCHER_REVOKED")
    assert count_rows(app, VoucherUse) == 0 and count_rows(app, EcToken) == 0


def test_code_issued_right_after_revocation_works(yb, vd):
    """Same second as the revocation: the new code carries a later millisecond and stays valid."""
    p, inst = yb.person(), yb.institution()
    for _ in range(3):
        assert yb.as_user(p, "POST", "/vouchers/revocations").status_code == 200
        code = vd.issue(p)
        assert vd.scan(inst, code["qr_content"]).status_code == 200


def test_repeated_revocations_in_one_second(yb, vd):
    p, inst = yb.person(), yb.institution()
    yb.as_user(p, "POST", "/vouchers/revocations")
    between = vd.issue(p)
    yb.as_user(p, "POST", "/vouchers/revocations")
    problem(vd.scan(inst, between["qr_content"]), 422, "VOUCHER_REVOKED")
    assert vd.scan(inst, vd.issue(p)["qr_content"]).status_code == 200


def test_revocation_is_per_person(yb, vd):
    a, b, inst = yb.person(), yb.person(), yb.institution()
    code_b = vd.issue(b)
    yb.as_user(a, "POST", "/vouchers/revocations")
    assert vd.scan(inst, code_b["qr_content"]).status_code == 200


def test_revocation_requires_a_user(client):
    problem(client.post("/api/v1/vouchers/revocations"), 401, "AUTHENTICATION_REQUIRED")


def test_suspension_voids_codes_and_ec_tokens(app, yb, vd):
    from yibao.registry import services as registry

    p, inst = yb.person(), yb.institution()
    spent, pending = vd.issue(p), vd.issue(p)
    ec = vd.scan(inst, spent["qr_content"]).get_json()["ec_token"]
    with app.app_context(), db.uow() as uow:
        registry.set_person_status(uow, p.psn_no, "suspended")
        uow.commit()
    # issue 10.5: was 422 VOUCHER_REVOKED; the scanner now learns that the person is suspended
    problem(vd.scan(inst, pending["qr_content"]), 403, "PERSON_SUSPENDED")
    with app.app_context(), db.uow(readonly=True) as uow:
        inst_id = registry.institution_by_org_id(uow, inst.org_id).id
        try:
            ec_tokens.resolve_ec_token(uow, ec, institution_id=inst_id)
            raise AssertionError("ec_token of a suspended person still resolves")
        except Exception as exc:  # noqa: BLE001
            assert getattr(exc, "code", None) == "EC_TOKEN_INVALID"


def test_activation_on_a_new_device_voids_old_codes(yb, vd):
    p, inst = yb.person(), yb.institution()
    old = vd.issue(p)
    time.sleep(1.05)  # a later second than the first activation's watermark
    yb.activate(p, device_id="new-phone")
    problem(vd.scan(inst, old["qr_content"]), 422, "VOUCHER_REVOKED")
    assert vd.scan(inst, vd.issue(p)["qr_content"]).status_code == 200


def test_revoke_service_is_monotonic(app, yb):
    from yibao.registry import services as registry

    p = yb.person()
    with app.app_context(), db.uow() as uow:
        pid = registry.person_by_psn_no(uow, p.psn_no).id
        now = time.time()
        later = subjects.revoke_outstanding(uow, pid, now=now + 60)
        assert subjects.revoke_outstanding(uow, pid, now=now) == later
        assert later == int((now + 60) * 1000) + 1


def test_revocation_is_exact_to_the_millisecond():
    """A code's issue instant (iat + jti millis) against the watermark: before is void, after is valid."""
    for millis in (0, 1, 500, 999):
        jti = claims.new_jti(millis)
        assert len(jti) == 8
        assert claims.issued_ms(1_800_000_000, jti) == 1_800_000_000_000 + millis
    assert claims.issued_ms(1, "__aaaaaa") is None


def _set_status(app, p, status):
    from yibao.registry import services as registry

    with app.app_context(), db.uow() as uow:
        registry.set_person_status(uow, p.psn_no, status)
        uow.commit()


def test_suspended_persons_code_answers_person_suspended_and_is_consumed(app, yb, vd):
    """Issue 10.5: not VOUCHER_REVOKED (the suspension's watermark), and consumed like any refusal
    after the signature and revocation checks."""
    p, inst = yb.person(), yb.institution()
    code = vd.issue(p)
    _set_status(app, p, "suspended")
    problem(vd.scan(inst, code["qr_content"]), 403, "PERSON_SUSPENDED")
    assert count_rows(app, VoucherUse) == 1 and count_rows(app, EcToken) == 0
    # single use comes before the person check (README "Verification order and codes")
    problem(vd.scan(inst, code["qr_content"]), 409, "VOUCHER_ALREADY_USED")
    with app.app_context(), db.uow(readonly=True) as uow:
        rows = uow.session.query(UsageRecord).order_by(UsageRecord.id).all()
        assert [(r.result, r.code) for r in rows] == [
            ("refused", "PERSON_SUSPENDED"),
            ("refused", "VOUCHER_ALREADY_USED"),
        ]
        assert rows[0].person_id is not None and rows[0].jti is not None


def test_reactivated_person_old_code_stays_revoked(app, yb, vd):
    """The suspension's watermark stays: once active again, codes from before it are VOUCHER_REVOKED."""
    p, inst = yb.person(), yb.institution()
    old = vd.issue(p)
    _set_status(app, p, "suspended")
    _set_status(app, p, "active")
    problem(vd.scan(inst, old["qr_content"]), 422, "VOUCHER_REVOKED")
    assert count_rows(app, VoucherUse) == 0
    assert vd.scan(inst, vd.issue(p)["qr_content"]).status_code == 200
