"""Service tier of the money rules (no HTTP): the charge split, mutual-aid order, refunds back to
their sources, the release of traceability codes. The pure arithmetic is in test_money.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from payments.models import TraceCodeSettlement
from yibao.db import db
from yibao.errors import AppError

from .services_support import Money, line
from .support import trace_code

SERVICE_TIER = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
fen = st.integers(min_value=0, max_value=5_000)


@pytest.fixture
def money(app, monkeypatch):
    with app.app_context():
        yield Money(monkeypatch)


@contextmanager
def refused(code: str) -> Iterator[None]:
    with pytest.raises(AppError) as info:
        yield
    assert info.value.code == code, info.value.code


@SERVICE_TIER
@given(own=fen, h1=fen, h2=fen, price=st.integers(1, 12_000), delivery=st.integers(0, 800))
def test_charge_split_own_account_then_holders_in_order_then_cash(money, own, h1, h2, price, delivery):
    payer, first, second = money.person(own), money.person(h1), money.person(h2)
    money.holders[payer] = [first, second]
    order = money.pay(money.place(payer, [line(price)], delivery_fee_fen=delivery))
    from_own = min(price, own)
    from_first = min(price - from_own, h1)
    from_second = min(price - from_own - from_first, h2)
    cash = price - from_own - from_first - from_second + delivery
    assert (order.status, order.account_pay_fen, order.cash_pay_fen) == ("paid", from_own, cash)
    assert order.mutual_aid_pay_fen == from_first + from_second
    assert order.total_fen == price + delivery
    assert (money.balance(payer), money.balance(first), money.balance(second)) == (
        own - from_own,
        h1 - from_first,
        h2 - from_second,
    )
    assert money.reconciled()


def test_a_payer_without_a_personal_account_pays_cash(money):
    resident = money.person(insurance_type="resident")
    order = money.pay(money.place(resident, [line(1000)], delivery_fee_fen=50))
    assert (order.account_pay_fen, order.mutual_aid_pay_fen, order.cash_pay_fen) == (0, 0, 1050)


def test_account_only_refuses_a_shortfall_when_placed_and_when_paid(money):
    payer = money.person(1000)
    with refused("INSUFFICIENT_BALANCE"):
        money.place(payer, [line(1001)], account_only=True)
    # delivery is always cash, even account-only
    quoted = money.place(payer, [line(800)], delivery_fee_fen=300, account_only=True)
    assert (quoted.account_pay_fen, quoted.cash_pay_fen) == (800, 300)
    money.pay(money.place(payer, [line(500)]))  # the balance drops to 500 before the quote is paid
    with refused("INSUFFICIENT_BALANCE"):
        money.pay(quoted)
    assert money.balance(payer) == 500  # nothing debited by the refused payment
    assert money.reconciled()


def test_a_holder_is_charged_only_once_the_one_before_is_used_up(money):
    payer, first, second = money.person(100), money.person(300), money.person(1000)
    money.holders[payer] = [second, first]  # family_accounts decides the order
    order = money.pay(money.place(payer, [line(700)]))
    assert (order.account_pay_fen, order.mutual_aid_pay_fen, order.cash_pay_fen) == (100, 600, 0)
    assert (money.balance(second), money.balance(first)) == (400, 300)


@SERVICE_TIER
@given(
    own=fen,
    h1=fen,
    h2=fen,
    price=st.integers(1, 12_000),
    delivery=st.integers(0, 800),
    cuts=st.lists(st.integers(1, 4_000), max_size=4),
)
def test_refunds_go_back_to_their_sources_until_all_is_returned(money, own, h1, h2, price, delivery, cuts):
    payer, first, second = money.person(own), money.person(h1), money.person(h2)
    money.holders[payer] = [first, second]
    order = money.pay(money.place(payer, [line(price)], delivery_fee_fen=delivery))
    paid = {
        "first": h1 - money.balance(first),
        "second": h2 - money.balance(second),
        "own": order.account_pay_fen,
        "cash": order.cash_pay_fen,
    }
    back = dict.fromkeys(paid, 0)
    left = order.total_fen
    for cut in [*cuts, None]:  # a few partial refunds, then the rest
        amount = None if cut is None else min(cut, left)
        if amount == 0:
            continue
        before = {"first": money.balance(first), "second": money.balance(second), "own": money.balance(payer)}
        r = money.refund(order, amount)
        got = {
            "first": money.balance(first) - before["first"],
            "second": money.balance(second) - before["second"],
            "own": money.balance(payer) - before["own"],
            "cash": r.cash_refund_fen,
        }
        assert sum(got.values()) == r.amount_fen == (left if amount is None else amount)
        assert r.account_refund_fen == got["first"] + got["second"] + got["own"]
        assert r.mutual_aid_refund_fen == got["first"] + got["second"]
        # insurance money first: the holder charged last, then the one before, then the own account, cash
        order_of_return = ["second", "first", "own", "cash"]
        for i, source in enumerate(order_of_return):
            if got[source]:
                for earlier in order_of_return[:i]:
                    assert back[earlier] + got[earlier] == paid[earlier], (source, earlier)
        for source in back:
            back[source] += got[source]
            assert back[source] <= paid[source]
        left -= r.amount_fen
        if left == 0:
            break
    assert back == paid
    assert (money.balance(payer), money.balance(first), money.balance(second)) == (own, h1, h2)
    assert money.reconciled()


def test_refund_bounds(money):
    payer = money.person(5000)
    order = money.place(payer, [line(1000)], delivery_fee_fen=200)
    with refused("ORDER_STATE_CONFLICT"):  # nothing paid yet
        money.refund(order, 1)
    money.pay(order)
    with refused("REFUND_EXCEEDS_PAID"):
        money.refund(order, 1201)
    money.refund(order, 1000)
    with refused("REFUND_EXCEEDS_PAID"):
        money.refund(order, 201)
    assert money.refund(order).amount_fen == 200  # the rest
    with refused("ORDER_STATE_CONFLICT"):
        money.refund(order, 1)


def test_a_refund_releases_traceability_codes_it_has_paid_back(money):
    payer = money.person(10_000)
    a, b = trace_code(), trace_code()
    order = money.pay(money.place(payer, [line(500, quantity=2, codes=[a, b])]))
    with refused("TRACE_CODE_ALREADY_SETTLED"):  # a settled box cannot be sold again
        money.pay(money.place(payer, [line(500, codes=[a])]))
    with refused("REFUND_TOO_SMALL_FOR_CODES"):  # 1 fen back does not pay for a 500-fen box
        money.refund(order, 1, codes=[a])
    with refused("TRACE_CODE_NOT_IN_ORDER"):
        money.refund(order, 500, codes=[trace_code()])
    first = money.refund(order, 500, codes=[a])
    assert first.released_trace_codes == [a]
    with refused("TRACE_CODE_NOT_IN_ORDER"):  # released already
        money.refund(order, 100, codes=[a])
    money.pay(money.place(payer, [line(500, codes=[a])]))  # the returned box is sold again
    last = money.refund(order)  # the final refund releases what is left
    assert last.released_trace_codes == [b]
    with db.uow(readonly=True) as uow:
        active = uow.session.scalars(
            select(TraceCodeSettlement.code).where(TraceCodeSettlement.released_at.is_(None))
        ).all()
    assert active == [a]  # only the resale's settlement
    assert money.reconciled()


def test_refund_follows_the_charge_order_after_a_holder_withdrew(money):
    payer, h1, h2 = money.person(0), money.person(300), money.person(1000)
    money.holders[payer] = [h1, h2]
    order = money.pay(money.place(payer, [line(1000)]))
    assert (money.balance(h1), money.balance(h2)) == (0, 300)
    money.holders[payer] = [h2]  # h1 withdraws: still refunded, in the place it was charged
    money.refund(order, 300)
    assert (money.balance(h1), money.balance(h2)) == (0, 600)  # the last-charged holder first
    money.refund(order)
    assert (money.balance(h1), money.balance(h2)) == (300, 1000)
