"""Verification at institutions: the contract body, the rule order, single use and its durability."""

from __future__ import annotations

import pytest

from tests.support import problem
from voucher import ec_tokens
from voucher.models import EcToken, UsageRecord, VoucherUse
from yibao.db import db

from .support import count_rows


def test_scan_returns_masked_person_and_ec_token(app, yb, vd):
    p = yb.person(balance=5000)
    inst = yb.institution()
    code = vd.issue(p)
    resp = vd.scan(inst, code["qr_content"], "02121")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["business_type"] == "02121"
    assert 1790 <= body["expires_in"] <= 1800
    assert body["person"] == {
        "psn_no": p.psn_no,
        "name_masked": body["person"]["name_masked"],
        "id_number_masked": p.id_number[:3] + "*" * 11 + p.id_number[-4:],
        "insurance_type": "employee",
        "insured_region": "532900",
        "has_personal_account": True,
    }
    assert "*" in body["person"]["name_masked"] and p.name not in body["person"]["name_masked"]
    ec = body["ec_token"]
    assert ec.startswith("ec_") and len(ec) <= 40
    with app.app_context(), db.uow(readonly=True) as uow:
        grant = ec_tokens.resolve_ec_token(uow, ec, institution_id=_inst_id(uow, inst))
        assert grant.business_type == "02121" and grant.actor_person_id is None
        rows = uow.session.query(UsageRecord).all()
        assert [(r.result, r.code, r.operator_id, r.device_id) for r in rows] == [
            ("accepted", None, "op-001", "scanner-7")
        ]


def test_compact_jws_is_accepted_as_qr_content(yb, vd):
    p, inst = yb.person(), yb.institution()
    assert vd.scan(inst, vd.issue(p)["token"]).status_code == 200


def test_second_scan_is_already_used(app, yb, vd):
    p, inst = yb.person(), yb.institution()
    code = vd.issue(p)
    assert vd.scan(inst, code["qr_content"]).status_code == 200
    problem(vd.scan(inst, code["qr_content"]), 409, "VOUCHER_ALREADY_USED")
    # the other spelling of the same token is the same token
    problem(vd.scan(inst, code["token"]), 409, "VOUCHER_ALREADY_USED")
    assert count_rows(app, EcToken) == 1
    assert count_rows(app, UsageRecord, result="refused", code="VOUCHER_ALREADY_USED") == 2


def test_durable_record_survives_a_redis_flush(app, yb, vd, redis_client):
    p, inst = yb.person(), yb.institution()
    code = vd.issue(p)
    assert vd.scan(inst, code["qr_content"]).status_code == 200
    redis_client.flushdb()
    problem(vd.scan(inst, code["qr_content"]), 409, "VOUCHER_ALREADY_USED")
    assert count_rows(app, VoucherUse) == 1
    assert count_rows(app, EcToken) == 1


def test_not_designated_for_business_type(app, yb, vd):
    p = yb.person()
    inst = yb.institution(kind="pharmacy", services=["02121"])
    code = vd.issue(p)
    problem(vd.scan(inst, code["qr_content"], "01101"), 403, "INSTITUTION_NOT_DESIGNATED")
    # refused before the token was even read: still usable at a designated counter
    assert vd.scan(inst, code["qr_content"], "02121").status_code == 200
    assert count_rows(app, UsageRecord, code="INSTITUTION_NOT_DESIGNATED") == 1


def test_region_not_covered_consumes_the_code(app, yb, vd):
    p = yb.person(region="532900")
    inst = yb.institution(region="110101")
    code = vd.issue(p)
    problem(vd.scan(inst, code["qr_content"]), 403, "REGION_NOT_COVERED")
    home = yb.institution(region="532900")
    problem(vd.scan(home, code["qr_content"]), 409, "VOUCHER_ALREADY_USED")
    assert count_rows(app, EcToken) == 0
    assert count_rows(app, UsageRecord, code="REGION_NOT_COVERED") == 1


def test_cross_region_filing_covers_the_region(yb, vd):
    p = yb.person(region="532900")
    resp = yb.admin("POST", f"/persons/{p.psn_no}/cross-region-filings", {"region": "110000"})
    assert resp.status_code == 201, resp.get_json()
    inst = yb.institution(region="110101")
    assert vd.scan(inst, vd.issue(p)["qr_content"]).status_code == 200


def test_county_institution_in_insured_prefecture(yb, vd):
    p = yb.person(region="532900")
    inst = yb.institution(region="532901")
    assert vd.scan(inst, vd.issue(p)["qr_content"]).status_code == 200


def test_resident_insurance_cannot_buy_at_pharmacy(app, yb, vd):
    p = yb.person(insurance_type="resident")
    inst = yb.institution()
    problem(vd.scan(inst, vd.issue(p)["qr_content"], "02121"), 403, "SCOPE_NOT_ALLOWED")
    # other business types are fine for resident insurance
    assert vd.scan(inst, vd.issue(p)["qr_content"], "01302").status_code == 200


def test_person_suspended_after_issuance(app, yb, vd):
    """Suspension without the hook (data imported by the operator): the status check still refuses."""
    from yibao.registry.models import Person

    p, inst = yb.person(), yb.institution()
    code = vd.issue(p)
    with app.app_context(), db.uow() as uow:
        uow.session.query(Person).filter_by(psn_no=p.psn_no).update({"status": "suspended"})
        uow.commit()
    problem(vd.scan(inst, code["qr_content"]), 403, "PERSON_SUSPENDED")
    assert count_rows(app, VoucherUse) == 1  # consumed: it passed the signature check


def test_refusals_are_audited_and_committed(app, yb, vd):
    inst = yb.institution()
    problem(vd.scan(inst, "garbage"), 400, "VOUCHER_MALFORMED")
    rows = _usage(app)
    assert [(r.person_id, r.result, r.code) for r in rows] == [(None, "refused", "VOUCHER_MALFORMED")]


def test_unsigned_request_writes_nothing(app, yb, vd, client):
    p = yb.person()
    code = vd.issue(p)
    resp = client.post("/api/v1/verifications", json={"qr_content": code["qr_content"]})
    problem(resp, 401, "INSTITUTION_AUTH_FAILED")
    assert count_rows(app, UsageRecord) == 0 and count_rows(app, VoucherUse) == 0


@pytest.mark.parametrize(
    "missing", ["qr_content", "business_type", "operator_id", "operator_name", "device_id", "out_biz_no"]
)
def test_contract_fields_are_required(app, yb, vd, missing):
    inst = yb.institution()
    body = {
        "qr_content": "x",
        "business_type": "02121",
        "operator_id": "o",
        "operator_name": "n",
        "device_id": "d",
        "out_biz_no": "b",
    }
    body.pop(missing)
    body_resp = problem(yb.as_institution(inst, "POST", "/verifications", body), 422, "VALIDATION_FAILED")
    assert missing in body_resp["errors"]
    assert count_rows(app, UsageRecord) == 0


def test_unknown_business_type(app, yb, vd):
    inst = yb.institution()
    problem(vd.scan(inst, "x", "99999"), 422, "VALIDATION_FAILED")


def test_zh_cn_detail(yb, vd):
    inst = yb.institution()
    body = {"qr_content": "x", "business_type": "02121", "operator_id": "o", "operator_name": "n"}
    body |= {"device_id": "d", "out_biz_no": "b"}
    resp = yb.as_institution(inst, "POST", "/verifications", body, headers={"Accept-Language": "zh-CN"})
    assert problem(resp, 400, "VOUCHER_MALFORMED")["detail"] == "扫描内容不是有效的医保码。"


def _usage(app):
    with app.app_context(), db.uow(readonly=True) as uow:
        return uow.session.query(UsageRecord).order_by(UsageRecord.id).all()


def _inst_id(uow, inst):
    from yibao.registry import services as registry

    return registry.institution_by_org_id(uow, inst.org_id).id
