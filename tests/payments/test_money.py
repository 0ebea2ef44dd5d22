"""Property tests of the money arithmetic and the traceability-code parser."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payments import money
from payments.services import valid_trace_code

fen = st.integers(min_value=0, max_value=money.MAX_FEN)
small = st.integers(min_value=0, max_value=10**9)


@given(
    drug=small,
    delivery=small,
    own=st.integers(min_value=-5, max_value=10**9),
    holders=st.lists(st.tuples(st.integers(1, 99), small), max_size=4),
)
def test_split_is_never_negative_and_adds_up(drug, delivery, own, holders):
    s = money.split_payment(
        drug_fen=drug, delivery_fee_fen=delivery, own_balance=own, holder_balances=holders
    )
    assert s.account_fen >= 0 and s.cash_fen >= 0 and all(f > 0 for _, f in s.mutual_aid)
    assert s.account_fen + s.mutual_aid_fen + s.cash_fen == drug + delivery
    assert s.account_fen <= max(own, 0)
    assert s.cash_fen >= delivery  # delivery is always cash
    for key, f in s.mutual_aid:
        assert f <= dict(holders)[key] or f <= sum(b for k, b in holders if k == key)
    # the own account is used up before any holder is charged
    if s.mutual_aid:
        assert s.account_fen == max(own, 0)


@given(
    paid=st.tuples(
        small, st.lists(st.tuples(st.integers(1, 99), small), max_size=3, unique_by=lambda t: t[0]), small
    ),
    data=st.data(),
)
def test_refunds_never_exceed_what_each_source_paid(paid, data):
    own, aid, cash = paid
    total = own + sum(f for _, f in aid) + cash
    left_own, left_aid, left_cash = own, dict(aid), cash
    refunded = 0
    for step in range(6):
        if refunded == total:
            break
        # a few partial refunds, then the rest
        rest = total - refunded
        amount = rest if step == 5 else data.draw(st.integers(min_value=1, max_value=rest))
        r = money.split_refund(
            amount, account_left=left_own, mutual_aid_left=list(left_aid.items()), cash_left=left_cash
        )
        assert r.total_fen == amount
        assert r.account_fen <= left_own and r.cash_fen <= left_cash
        for k, f in r.mutual_aid:
            assert 0 < f <= left_aid[k]
            left_aid[k] -= f
        left_own -= r.account_fen
        left_cash -= r.cash_fen
        refunded += amount
    assert (left_own, sum(left_aid.values()), left_cash) == (0, 0, 0)
    with pytest.raises(ValueError):
        money.split_refund(1, account_left=0, mutual_aid_left=[], cash_left=0)


@given(own=small, cash=small, amount=small)
def test_insurance_money_is_refunded_before_cash(own, cash, amount):
    if amount > own + cash:
        return
    r = money.split_refund(amount, account_left=own, mutual_aid_left=[], cash_left=cash)
    assert r.cash_fen == max(0, amount - own)


@given(lines=st.lists(st.tuples(st.integers(1, 10**6), fen), min_size=1, max_size=5), delivery=fen)
def test_totals_beyond_2_pow_53_are_refused(lines, delivery):
    exact = sum(q * p for q, p in lines) + delivery
    if exact > money.MAX_FEN:
        with pytest.raises(money.AmountTooLarge):
            money.order_total(lines, delivery)
    else:
        drug, total = money.order_total(lines, delivery)
        assert total == exact and drug == exact - delivery


def test_bad_lines_refused():
    with pytest.raises(ValueError):
        money.order_total([(0, 1)], 0)
    with pytest.raises(ValueError):
        money.order_total([(1, -1)], 0)
    with pytest.raises(ValueError):
        money.check_amount(-1)


@given(st.text(max_size=40))
def test_trace_code_parser_never_crashes(s):
    ok = valid_trace_code(s)
    if ok:
        assert (len(s) == 20 and s.isdigit()) or "01" in s[:4]


@given(st.from_regex(r"\A[0-9]{20}\Z"))
def test_twenty_digit_codes_are_valid(s):
    assert valid_trace_code(s)


@given(gtin=st.from_regex(r"\A[0-9]{14}\Z"), serial=st.from_regex(r"\A[0-9A-Za-z]{1,20}\Z"))
def test_gs1_codes_are_valid(gtin, serial):
    assert valid_trace_code(f"(01){gtin}(21){serial}")
    assert valid_trace_code(f"01{gtin}21{serial}\x1d10LOT1")
