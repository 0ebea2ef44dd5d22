"""Fund supervision's identity rules at verification: one person's code scanned in two prefectures."""

from __future__ import annotations

from sqlalchemy import select

from supervision.models import Alert, Scan
from tests.supervision.support import velocity_rule
from tests.support import problem
from voucher.models import EcToken, UsageRecord
from yibao.db import db

from .support import count_rows


def test_two_prefectures_within_the_window_is_blocked_and_the_code_stays_spent(app, yb, vd):
    p = yb.person(region="530000")  # insured province-wide: both pharmacies are covered
    dali, kunming = yb.institution(region="532901"), yb.institution(region="530102")
    rid = velocity_rule(yb)
    assert vd.scan(dali, vd.issue(p)["qr_content"]).status_code == 200
    assert vd.scan(dali, vd.issue(p)["qr_content"]).status_code == 200  # same prefecture: still 1
    code = vd.issue(p)
    body = problem(vd.scan(kunming, code["qr_content"]), 422, "SUPERVISION_BLOCKED")
    assert body["violations"] == [
        {
            "rule_id": rid,
            "kind": "identity_velocity",
            "evidence": {"window_minutes": 60, "max_prefectures": 1, "prefectures": 2},
        }
    ]
    # no ec_token for the refused scan; the audit says why; the blocked scan is not counted
    assert count_rows(app, EcToken) == 2
    assert count_rows(app, UsageRecord, result="refused", code="SUPERVISION_BLOCKED") == 1
    with app.app_context(), db.uow(readonly=True) as uow:
        assert sorted(uow.session.scalars(select(Scan.prefecture))) == ["5329", "5329"]
        assert uow.session.execute(select(Alert.stage, Alert.action)).all() == [("verify", "block")]
    # the code was consumed by the refused attempt, as with any later refusal
    problem(vd.scan(kunming, code["qr_content"]), 409, "VOUCHER_ALREADY_USED")


def test_warn_rule_accepts_the_scan_lists_it_in_warnings_and_records_an_alert(app, yb, vd):
    p = yb.person(region="530000")
    dali, kunming = yb.institution(region="532901"), yb.institution(region="530102")
    rid = velocity_rule(yb, "warn")
    first = vd.scan(dali, vd.issue(p)["qr_content"])
    assert first.status_code == 200 and first.get_json()["warnings"] == []  # one prefecture: at the limit
    second = vd.scan(kunming, vd.issue(p)["qr_content"])
    assert second.status_code == 200 and second.get_json()["ec_token"]
    assert second.get_json()["warnings"] == [
        {
            "rule_id": rid,
            "kind": "identity_velocity",
            "evidence": {"window_minutes": 60, "max_prefectures": 1, "prefectures": 2},
        }
    ]
    with app.app_context(), db.uow(readonly=True) as uow:
        assert uow.session.execute(select(Alert.stage, Alert.action)).all() == [("verify", "warn")]
        assert sorted(uow.session.scalars(select(Scan.prefecture))) == ["5301", "5329"]


def test_no_rule_counts_accepted_scans_only(app, yb, vd):
    p = yb.person(region="530000")
    dali = yb.institution(region="532901")
    assert vd.scan(dali, vd.issue(p)["qr_content"]).status_code == 200
    code = vd.issue(p)
    assert vd.scan(dali, code["qr_content"]).status_code == 200
    problem(vd.scan(dali, code["qr_content"]), 409, "VOUCHER_ALREADY_USED")
    assert count_rows(app, Scan) == 2
