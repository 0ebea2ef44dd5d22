"""The evaluation service, rule by rule: exactly at the limit, one over, refunds, disabled rules, windows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from supervision import checks
from supervision.models import Alert, Sale

from .support import NOW, days, ref

pytestmark = pytest.mark.usefixtures("app")


@pytest.fixture
def ids(sup, person, shops):  # type: ignore[no-untyped-def]
    return sup.person_id(person), [sup.institution_id(s) for s in shops]


def blocked(excinfo) -> list[dict]:  # type: ignore[no-untyped-def]
    return excinfo.value.extra["violations"]


# quantity_limit


def test_exactly_at_the_limit_is_allowed_one_over_is_blocked(sup, ids):
    pid, (a, b, _) = ids
    rule = sup.quantity_limit("XA01", max_quantity=10, window_days=30)
    sup.sell(pid, a, [("XA01", 4)], at=NOW - days(10))
    sup.sell(pid, b, [("XA01", 3)], at=NOW - days(1))  # any institution counts
    assert sup.check(pid, a, [("XA01", 3)]).warnings == []  # 4 + 3 + 3 = 10: at the limit
    with pytest.raises(checks.SupervisionBlocked) as exc:
        sup.check(pid, a, [("XA01", 2), ("XA01", 2)])  # two lines of one code count together: 11
    assert blocked(exc) == [
        {
            "rule_id": rule,
            "kind": "quantity_limit",
            "evidence": {
                "drug_code": "XA01",
                "window_days": 30,
                "max_quantity": 10,
                "counted_quantity": 7,
                "this_order_quantity": 4,
                "total_quantity": 11,
            },
        }
    ]
    assert exc.value.code == "SUPERVISION_BLOCKED" and exc.value.status == 422


def test_other_codes_and_other_persons_do_not_count(sup, yb, ids):
    pid, (a, *_) = ids
    other = sup.person_id(yb.person())
    sup.quantity_limit("XA01", max_quantity=5)
    sup.sell(pid, a, [("XB02", 50)])
    sup.sell(other, a, [("XA01", 5)])
    assert sup.check(pid, a, [("XA01", 5), ("XB02", 100)]).warnings == []


def test_a_refund_gives_units_back(sup, ids):
    pid, (a, *_) = ids
    sup.quantity_limit("XA01", max_quantity=10)
    order = sup.sell(pid, a, [("XA01", 8), ("XC03", 1)], at=NOW - days(2))
    with pytest.raises(checks.SupervisionBlocked):
        sup.check(pid, a, [("XA01", 3)])
    sup.refund(order, [("XA01", 1)])  # a partial refund releases one box: 7 + 3 = 10
    assert sup.check(pid, a, [("XA01", 3)]).warnings == []
    sup.refund(order, [("XA01", 100)])  # never more than were sold
    sup.refund(order)  # a final refund releases everything (again: no error)
    with sup.read() as uow:
        assert {(s.code, s.released) for s in uow.session.scalars(select(Sale))} == {("XA01", 8), ("XC03", 1)}
    assert sup.check(pid, a, [("XA01", 10)]).warnings == []
    sup.refund("PO-unknown")  # an order supervision never counted: nothing to give back


def test_a_rule_disabled_between_order_and_pay_no_longer_applies(sup, ids):
    pid, (a, *_) = ids
    rule = sup.quantity_limit("XA01", max_quantity=2)
    order = ref()
    with pytest.raises(checks.SupervisionBlocked):
        sup.check(pid, a, [("XA01", 3)], order_ref=order, stage="create")
    sup.set_enabled(rule, False)
    sup.sell(pid, a, [("XA01", 3)], order_ref=order)  # pay checks again: nothing applies
    sup.set_enabled(rule, True)
    with pytest.raises(checks.SupervisionBlocked):  # and the sale counted meanwhile
        sup.check(pid, a, [("XA01", 1)])


def test_a_rule_enabled_between_order_and_pay_blocks_the_pay(sup, ids):
    pid, (a, *_) = ids
    order = ref()
    sup.check(pid, a, [("XA01", 3)], order_ref=order)
    sup.quantity_limit("XA01", max_quantity=2)
    with pytest.raises(checks.SupervisionBlocked):
        sup.sell(pid, a, [("XA01", 3)], order_ref=order)
    with sup.read() as uow:  # the blocked pay counted nothing
        assert uow.session.scalar(select(Sale)) is None


def test_window_boundary_exactly_one_window_old_is_out(sup, ids):
    pid, (a, *_) = ids
    sup.quantity_limit("XA01", max_quantity=5, window_days=7)
    sup.sell(pid, a, [("XA01", 4)], at=NOW - days(7))  # exactly 7 days before now: dropped out
    assert sup.check(pid, a, [("XA01", 5)], now=NOW).warnings == []
    sup.sell(pid, a, [("XA01", 1)], at=NOW - days(7) + timedelta(microseconds=1))  # still inside
    with pytest.raises(checks.SupervisionBlocked):
        sup.check(pid, a, [("XA01", 5)], now=NOW)
    # a microsecond later the first sale of that one box drops out too
    assert sup.check(pid, a, [("XA01", 5)], now=NOW + timedelta(microseconds=1)).warnings == []


def test_a_warn_rule_lets_the_order_through_and_records_an_alert_once_per_stage(sup, ids):
    pid, (a, *_) = ids
    warn = sup.quantity_limit("XA01", max_quantity=1, action="warn")
    order = ref()
    verdict = sup.check(pid, a, [("XA01", 2)], order_ref=order, stage="create")
    assert [w["rule_id"] for w in verdict.warnings] == [warn]
    assert verdict.warnings[0]["evidence"]["total_quantity"] == 2
    sup.check(pid, a, [("XA01", 2)], order_ref=order, stage="create")  # a retry: still one alert
    sup.sell(pid, a, [("XA01", 2)], order_ref=order)
    with sup.read() as uow:
        rows = uow.session.execute(select(Alert.stage, Alert.action, Alert.subject_ref)).all()
    assert sorted(rows) == [("create", "warn", order), ("pay", "warn", order)]


def test_block_and_warn_together_record_both_and_list_only_the_block(sup, ids):
    pid, (a, *_) = ids
    block = sup.quantity_limit("XA01", max_quantity=3)
    sup.quantity_limit("XA01", max_quantity=1, action="warn")
    with pytest.raises(checks.SupervisionBlocked) as exc:
        sup.check(pid, a, [("XA01", 4)])
    assert [v["rule_id"] for v in blocked(exc)] == [block]
    assert sup.alert_count() == 2


# repeat_purchase


def test_repeat_purchase_counts_distinct_institutions_this_one_included(sup, ids):
    pid, (a, b, c) = ids
    rule = sup.rule("repeat_purchase", drug_code="XA01", window_days=30, max_institutions=2)
    sup.sell(pid, a, [("XA01", 1)], at=NOW - days(3))
    sup.sell(pid, a, [("XA01", 1)], at=NOW - days(2))  # the same shop again: still one
    assert sup.check(pid, b, [("XA01", 1)]).warnings == []  # a and b: 2, at the limit
    assert sup.check(pid, a, [("XA01", 1)]).warnings == []  # a again: 1
    second = sup.sell(pid, b, [("XA01", 1)], at=NOW - days(1))
    with pytest.raises(checks.SupervisionBlocked) as exc:
        sup.check(pid, c, [("XA01", 1)])  # a, b and c: 3
    assert blocked(exc) == [
        {
            "rule_id": rule,
            "kind": "repeat_purchase",
            "evidence": {"drug_code": "XA01", "window_days": 30, "max_institutions": 2, "institutions": 3},
        }
    ]
    sup.refund(second)  # b's sale refunded whole: b no longer sold it
    assert sup.check(pid, c, [("XA01", 1)]).warnings == []


def test_repeat_purchase_window_boundary(sup, ids):
    pid, (a, b, _) = ids
    sup.rule("repeat_purchase", drug_code="XA01", window_days=1, max_institutions=1)
    sup.sell(pid, a, [("XA01", 1)], at=NOW - days(1))
    assert sup.check(pid, b, [("XA01", 1)]).warnings == []
    sup.sell(pid, a, [("XA01", 1)], at=NOW - days(1) + timedelta(seconds=1))
    with pytest.raises(checks.SupervisionBlocked):
        sup.check(pid, b, [("XA01", 1)])


# identity_velocity


def test_identity_velocity_counts_distinct_prefectures_of_accepted_scans(sup, ids, shops):
    pid, (a, b, c) = ids
    rule = sup.rule("identity_velocity", window_minutes=60, max_prefectures=1)
    sup.scan(pid, a, "532901", at=NOW - timedelta(minutes=30))
    sup.scan(pid, b, "532922", at=NOW - timedelta(minutes=10))  # the same prefecture 5329
    with pytest.raises(checks.SupervisionBlocked) as exc:
        sup.scan(pid, c, "530102", at=NOW)  # Kunming, 5301: two prefectures in an hour
    assert blocked(exc) == [
        {
            "rule_id": rule,
            "kind": "identity_velocity",
            "evidence": {"window_minutes": 60, "max_prefectures": 1, "prefectures": 2},
        }
    ]
    # the blocked scan was not counted as accepted; an hour after the last Dali scan, Kunming is fine
    assert sup.scan(pid, c, "530102", at=NOW + timedelta(minutes=50)).warnings == []
    with sup.read() as uow:
        assert uow.session.scalar(select(Alert.stage)) == "verify"


def test_identity_velocity_boundary_and_no_rules(sup, ids):
    pid, (a, _, c) = ids
    assert sup.scan(pid, a, "532901", at=NOW - timedelta(minutes=5)).warnings == []  # no rule yet
    sup.rule("identity_velocity", window_minutes=5, max_prefectures=1, action="warn")
    verdict = sup.scan(pid, c, "530102", at=NOW)  # exactly 5 minutes later: the first is out
    assert verdict.warnings == []
    verdict = sup.scan(pid, a, "532901", at=NOW + timedelta(minutes=1))
    assert [w["evidence"]["prefectures"] for w in verdict.warnings] == [2]


def test_a_bad_region_or_line_is_a_programming_error(sup, ids):
    pid, (a, *_) = ids
    sup.rule("identity_velocity", window_minutes=5, max_prefectures=1)
    with pytest.raises(ValueError):
        sup.scan(pid, a, "5329")
    with pytest.raises(ValueError):
        sup.check(pid, a, [("XA01", 0)])
