"""Property tests of the money arithmetic and the traceability-code parser."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payments import money
from payments.tracecodes import settlement_key, valid_trace_code

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


BOX = ("06901234567892", "SERIAL0001")


@pytest.mark.parametrize(
    "code",
    [
        "(01)06901234567892(21)SERIAL0001",
        "(01)06901234567892(17)271231(21)SERIAL0001",
        "(01)06901234567892(10)LOT7(21)SERIAL0001",
        "(01)06901234567892(21)SERIAL0001(17)271231(10)LOT7",
        "0106901234567892\x1d21SERIAL0001",
        "010690123456789221SERIAL0001",
        "01069012345678921727123121SERIAL0001\x1d10LOT7",
        "010690123456789210LOT7\x1d21SERIAL0001\x1d17271231",
        "0106901234567892310200150021SERIAL0001",  # a net weight (3102) before the serial
    ],
)
def test_every_notation_of_one_box_has_one_key(code):
    assert settlement_key(code) == f"01{BOX[0]}21{BOX[1]}"


@pytest.mark.parametrize(
    "code",
    [
        "(01)06901234567892(10)LOT7",  # a lot, not one box
        "(01)06901234567892(21)A(21)B",  # an AI twice
        "(01)06901234567892(17)2712(21)A",  # expiry of 4 digits
        "(01)06901234567892(99)(21)A",  # empty value
        "(01)06901234567892(21)A(88)X",  # unknown AI
        "(01)0690123456789X(21)A",  # GTIN not digits
        "(01)06901234567892(21)" + "A" * 21,  # serial over 20
        "(01)06901234567892(21)A B",  # space outside the GS1 character set
        "(01)06901234567892 (21)A",
        "0106901234567892\x1d\x1d21A",
        "01069012345678921727123",  # truncated fixed field
    ],
)
def test_malformed_gs1(code):
    assert settlement_key(code) is None and not valid_trace_code(code)


@given(
    gtin=st.from_regex(r"\A[0-9]{14}\Z"),
    serial=st.from_regex(r"\A[0-9A-Za-z]{1,20}\Z"),
    lot=st.from_regex(r"\A[0-9A-Za-z]{1,20}\Z"),
    expiry=st.from_regex(r"\A[0-9]{6}\Z"),
)
def test_gs1_key_ignores_extra_fields_and_order(gtin, serial, lot, expiry):
    key = f"01{gtin}21{serial}"
    assert settlement_key(f"(01){gtin}(21){serial}") == key
    assert settlement_key(f"(01){gtin}(17){expiry}(10){lot}(21){serial}") == key
    assert settlement_key(f"01{gtin}17{expiry}10{lot}\x1d21{serial}") == key
    assert settlement_key(f"01{gtin}21{serial}\x1d10{lot}") == key
