"""SCOPE_NOT_ALLOWED for a hospital order (issue 15, DESIGN.md v2): 422 with the order's own meaning, while a
scan's SCOPE_NOT_ALLOWED stays 403. The code on the wire is the contract's; the registry holds the order's
meaning as a variant (payments/errors.py), so the status, texts and OpenAPI document agree."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from payments.models import PaymentGrant, PaymentOrder
from tests.payments.test_hospital import body, policy, token
from tests.support import problem
from yibao import errors
from yibao.db import db


def counts(app) -> tuple[int, int]:
    with app.app_context(), db.uow(readonly=True) as uow:
        orders = uow.session.scalar(select(func.count(PaymentOrder.id)))
        used = uow.session.scalar(
            select(func.count(PaymentGrant.id)).where(PaymentGrant.used_at.is_not(None))
        )
        return orders, used


@pytest.mark.parametrize(
    ("kind", "business_type"),
    [("pharmacy", "02121"), ("pharmacy", "01302"), ("hospital", "01201"), ("hospital", "01101")],
)
def test_refused_with_the_order_meaning_and_nothing_written(app, yb, pay, kind, business_type):
    policy(yb)
    p = yb.person(balance=1000)
    inst = yb.institution(kind=kind, name="某机构", level="tertiary")
    before = counts(app)
    tok = token(app, inst, p, business_type)
    err = problem(pay.create(inst, body(tok)), 422, "SCOPE_NOT_ALLOWED")
    assert err["type"] == "urn:yibao:problem:scope_not_allowed" and err["title"] == "SCOPE_NOT_ALLOWED"
    assert "01301" in err["detail"] and "personal account" not in err["detail"]
    # the same body in Chinese (a new key): the same refusal, the order's text
    zh = yb.as_institution(
        inst,
        "POST",
        "/payment-orders",
        body(tok),
        headers={"Idempotency-Key": "zh-" + tok[-12:], "Accept-Language": "zh-CN"},
    )
    got = problem(zh, 422, "SCOPE_NOT_ALLOWED")
    assert "01301" in got["detail"] and "医院结算" in got["detail"]
    assert counts(app) == before  # no order, and the ec_token was not spent: it still places a v1 order
    if business_type == "02121":
        r = pay.create(inst, pay.order_body(ec_token=tok))
        assert r.status_code == 201, r.get_json()


def test_openapi_documents_422_for_orders_and_403_for_scans(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    order = spec["paths"]["/api/v1/payment-orders"]["post"]["responses"]
    assert "SCOPE_NOT_ALLOWED" in order["422"]["x-problem-codes"]
    assert "SCOPE_NOT_ALLOWED" not in order.get("403", {}).get("x-problem-codes", [])
    assert (
        "`SCOPE_NOT_ALLOWED`: Hospital settlement (med_type) needs a hospital" in order["422"]["description"]
    )
    scan = spec["paths"]["/api/v1/verifications"]["post"]["responses"]
    assert "SCOPE_NOT_ALLOWED" in scan["403"]["x-problem-codes"]
    assert "SCOPE_NOT_ALLOWED" not in scan["422"]["x-problem-codes"]
    assert "@" not in str(spec)  # no registry key ever reaches the document


def test_a_variant_is_registered_once():
    key = errors.register_variant(
        "SCOPE_NOT_ALLOWED", "hospital_order", errors.MESSAGES["SCOPE_NOT_ALLOWED@hospital_order"]
    )  # the same entry again: harmless
    assert errors.base_code(key) == "SCOPE_NOT_ALLOWED" and errors.MESSAGES["SCOPE_NOT_ALLOWED"][0] == 403
    with pytest.raises(ValueError, match="registered twice"):
        errors.register_variant("SCOPE_NOT_ALLOWED", "hospital_order", (409, "other", "其他"))
    e = errors.AppError(key, extra_field=1)
    assert (e.code, e.key, e.status) == ("SCOPE_NOT_ALLOWED", key, 422)
