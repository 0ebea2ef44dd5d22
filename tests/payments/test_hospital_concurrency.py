"""Concurrent hospital settlements of one person never pass a cap (real gunicorn processes, PostgreSQL)."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select

from benefits.models import BenefitTotals
from tests.benefits.support import policy_doc

from .test_concurrency import _check_ledger, gunicorn, pg_only, signed, together  # noqa: F401
from .test_hospital import YEAR, body, token

pytestmark = pytest.mark.slow


def test_20_concurrent_outpatient_settlements_stop_at_the_cap(app, yb, pay, tmp_path, pg_only):  # noqa: F811
    # outpatient cap 50000; each visit (second of the day, tertiary 50%) would take 10000: only 5 fit
    doc = policy_doc(**{"outpatient.annual_cap_fen": 50000, "outpatient.deductible_fen.tertiary": 0})
    assert yb.admin("PUT", f"/benefit-policies/532900/employee/{YEAR}", doc).status_code == 200
    hospital = yb.institution(kind="hospital", name="三甲医院", level="tertiary")
    p = yb.person()
    ids = []
    for _ in range(20):
        r = pay.create(hospital, body(token(app, hospital, p)))
        assert r.status_code == 201, r.get_json()
        assert r.get_json()["hifp_pay_fen"] == 10000  # provisional: each quote sees the whole cap
        ids.append(r.get_json()["pay_order_id"])
    with gunicorn(app, tmp_path, workers=4) as url:
        results = together(
            20, lambda i: signed(url, hospital, "POST", f"/payment-orders/{ids[i]}/pay", key=f"hp-{i}")
        )
    assert Counter(r.status_code for r in results) == {200: 20}, [
        r.text for r in results if r.status_code != 200
    ]
    paid = [r.json() for r in results]
    assert sum(b["hifp_pay_fen"] for b in paid) == 50000
    assert sorted(b["hifp_pay_fen"] for b in paid) == [0] * 15 + [10000] * 5
    assert all(b["fund_pay_fen"] + b["cash_pay_fen"] + b["account_pay_fen"] == 20000 for b in paid)
    with app.app_context():
        from yibao.db import db

        with db.uow(readonly=True) as uow:
            t = uow.session.scalar(select(BenefitTotals))
            assert t.hifp_outpatient_fen == 50000 and t.settlements == 20
    _check_ledger(pay)


def test_concurrent_hospital_pays_never_pass_a_quantity_limit(app, yb, pay, tmp_path, pg_only):  # noqa: F811
    """Supervision's lock at pay (issue 16): 8 orders of 1 unit, a limit of 3, all paid at once: 3 pass."""
    assert yb.admin("PUT", f"/benefit-policies/532900/employee/{YEAR}", policy_doc()).status_code == 200
    hospital = yb.institution(kind="hospital", name="三甲医院", level="tertiary")
    p = yb.person()
    items = [
        {"item_code": "XA01", "item_name": "头孢", "category": "A", "quantity": 1, "unit_price_fen": 1000}
    ]
    ids = []
    for _ in range(8):
        r = pay.create(hospital, body(token(app, hospital, p), items=items))
        assert r.status_code == 201, r.get_json()
        ids.append(r.get_json()["pay_order_id"])
    rule = {"drug_code": "XA01", "max_quantity": 3, "window_days": 30}
    r = yb.admin("POST", "/supervision-rules", {"kind": "quantity_limit", "params": rule, "action": "block"})
    assert r.status_code == 201, r.get_json()
    with gunicorn(app, tmp_path, workers=4) as url:
        results = together(
            8, lambda i: signed(url, hospital, "POST", f"/payment-orders/{ids[i]}/pay", key=f"hq-{i}")
        )
    assert Counter(r.status_code for r in results) == {200: 3, 422: 5}, [r.text for r in results]
    assert {r.json()["code"] for r in results if r.status_code == 422} == {"SUPERVISION_BLOCKED"}
    with app.app_context():
        from sqlalchemy import func

        from supervision.models import Sale
        from yibao.db import db

        with db.uow(readonly=True) as uow:
            assert uow.session.scalar(select(func.sum(Sale.quantity))) == 3
            assert uow.session.scalar(select(BenefitTotals.settlements)) == 3
    _check_ledger(pay)
