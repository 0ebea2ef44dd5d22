"""The split (benefits/split.py): example tables checkable by hand, then properties (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benefits import policy as pol
from benefits import split as sp

from .support import POLICY_DOC, policy_doc

POLICY = pol.parse(POLICY_DOC, version=3)


def run(
    med_type="outpatient",
    level="tertiary",
    lines=(("A", 1, 20000),),
    *,
    retired=False,
    category="none",
    totals=sp.Totals(),
    first=True,
    balance=0,
    holders=(),
    policy=POLICY,
):
    return sp.compute(
        policy,
        med_type=med_type,
        level=level,
        person=sp.Person(retired=retired, assistance_category=category),
        lines=[sp.Line(c, q, p) for c, q, p in lines],
        totals=totals,
        deductible_applies=first,
        account_balance_fen=balance,
        holder_balances=holders,
    )


# Each row: the case, the call, and the fields a reviewer recomputes by hand from POLICY_DOC.
EXAMPLES = [
    # outpatient tertiary, first visit of the day: deductible 5000; hifp = floor(15000 x 50%) = 7500;
    # the rest 12500: 10000 from the account, 2500 cash
    (
        "outpatient first visit",
        dict(balance=10000),
        dict(
            inscp_fen=20000,
            deductible_fen=5000,
            hifp_pay_fen=7500,
            fund_pay_fen=7500,
            account_pay_fen=10000,
            cash_pay_fen=2500,
            total_fen=20000,
        ),
    ),
    # second visit the same day at the same institution: no deductible; hifp = 20000 x 50% = 10000
    (
        "outpatient second visit",
        dict(first=False),
        dict(deductible_fen=0, hifp_pay_fen=10000, cash_pay_fen=10000),
    ),
    # primary level: no deductible, 70%: hifp = 14000
    ("primary", dict(level="primary"), dict(deductible_fen=0, hifp_pay_fen=14000, cash_pay_fen=6000)),
    # retired at tertiary: 50 + 10 = 60%: floor(15000 x 60%) = 9000
    ("retired", dict(retired=True), dict(deductible_fen=5000, hifp_pay_fen=9000, cash_pay_fen=11000)),
    # class B 10005 at 10%: preselfpay = 1000.5 -> 1001 (half up), in range 9004; class C 500 ownpay;
    # primary, 70%: hifp = floor(9004 x 70%) = floor(6302.8) = 6302; the person pays 10505 - 6302 = 4203
    (
        "class B self-pay",
        dict(level="primary", lines=(("B", 1, 10005), ("C", 1, 500))),
        dict(
            inscp_fen=9004,
            preselfpay_fen=1001,
            ownpay_fen=500,
            hifp_pay_fen=6302,
            cash_pay_fen=4203,
            total_fen=10505,
        ),
    ),
    # half up per line: two class B lines of 5 fen pay 1 + 1 (0.5 each rounds up), not 1 on their sum
    (
        "class B per line",
        dict(level="primary", lines=(("B", 1, 5), ("B", 1, 5))),
        dict(inscp_fen=8, preselfpay_fen=2),
    ),
    # outpatient cap 300000 with 299000 paid: second visit, secondary 60% = 12000 -> only 1000 left
    (
        "cap reached mid-year",
        dict(level="secondary", first=False, totals=sp.Totals(hifp_outpatient_fen=299000)),
        dict(hifp_pay_fen=1000, fund_pay_fen=1000, cash_pay_fen=19000),
    ),
    # inpatient tertiary 1000000: deductible 100000; hifp = 900000 x 80% = 720000; share = 280000;
    # cumulative shares 1900000 + 280000 pass the threshold 2000000 by 180000: hifmi = 180000 x 60% = 108000
    (
        "inpatient above threshold",
        dict(med_type="inpatient", lines=(("A", 1, 1000000),), totals=sp.Totals(inpatient_share_fen=1900000)),
        dict(
            deductible_fen=100000,
            hifp_pay_fen=720000,
            hifmi_pay_fen=108000,
            fund_pay_fen=828000,
            cash_pay_fen=172000,
        ),
    ),
    # inpatient entirely above the threshold already: the whole share 280000 counts: hifmi = 168000
    (
        "inpatient past threshold",
        dict(med_type="inpatient", lines=(("A", 1, 1000000),), totals=sp.Totals(inpatient_share_fen=2500000)),
        dict(hifmi_pay_fen=168000),
    ),
    # dibao resident, outpatient secondary first visit: hifp = floor(15000 x 60%) = 9000;
    # maf = floor((20000 - 9000) x 70%) = 7700; the person pays 3300 in cash (no personal account)
    (
        "dibao resident",
        dict(level="secondary", category="dibao"),
        dict(hifp_pay_fen=9000, maf_pay_fen=7700, fund_pay_fen=16700, cash_pay_fen=3300),
    ),
    # a category the policy does not list (tekun here) gets no assistance
    ("unlisted category", dict(level="secondary", category="tekun"), dict(maf_pay_fen=0)),
    # deductible never above inscp: a 3000 visit at tertiary pays 3000 deductible and no fund
    ("deductible above bill", dict(lines=(("A", 1, 3000),)), dict(deductible_fen=3000, hifp_pay_fen=0)),
    # account then mutual aid (holders in order) then cash: part 12500 = 2000 + 4000 + 6500 + 0
    (
        "mutual aid",
        dict(balance=2000, holders=((7, 4000), (8, 9000))),
        dict(account_pay_fen=2000, mutual_aid_pay_fen=10500, cash_pay_fen=0),
    ),
]


@pytest.mark.parametrize(("case", "kwargs", "expected"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_examples(case, kwargs, expected):
    s = run(**kwargs)
    got = {k: getattr(s, k) for k in expected}
    assert got == expected
    assert s.policy_version == 3
    assert s.fund_pay_fen + s.account_pay_fen + s.mutual_aid_pay_fen + s.cash_pay_fen == s.total_fen


def test_mutual_aid_per_holder():
    s = run(balance=2000, holders=((7, 4000), (8, 9000)))
    assert s.mutual_aid == ((7, 4000), (8, 6500))


def test_fields_are_the_contract():
    assert list(run().fields()) == [
        "med_type",
        "inscp_fen",
        "preselfpay_fen",
        "ownpay_fen",
        "deductible_fen",
        "hifp_pay_fen",
        "hifmi_pay_fen",
        "maf_pay_fen",
        "fund_pay_fen",
        "account_pay_fen",
        "mutual_aid_pay_fen",
        "cash_pay_fen",
        "total_fen",
        "policy_version",
    ]


def test_ratio_never_above_100():
    p = pol.parse(policy_doc(**{"outpatient.ratio_pct.tertiary": 95, "outpatient.retired_extra_pct": 20}))
    s = run(retired=True, first=False, policy=p)
    assert s.hifp_pay_fen == 20000


@pytest.mark.parametrize(
    "lines",
    [(("X", 1, 1),), (("A", 0, 1),), (("A", -1, 1),), (("A", 1, -1),)],
)
def test_bad_lines(lines):
    with pytest.raises(ValueError):
        run(lines=lines)


def test_too_large():
    with pytest.raises(sp.AmountTooLarge):
        run(lines=(("A", 2, 2**52),))


# ---- properties ----

lines_st = st.lists(
    st.tuples(st.sampled_from(sp.CATEGORIES), st.integers(1, 20), st.integers(0, 500000)),
    min_size=1,
    max_size=6,
)
pct = st.integers(0, 100)
fen = st.integers(0, 5000000)
levels3 = st.fixed_dictionaries({lv: fen for lv in sp.LEVELS})
pcts3 = st.fixed_dictionaries({lv: pct for lv in sp.LEVELS})
med_st = st.fixed_dictionaries(
    {"deductible_fen": levels3, "ratio_pct": pcts3, "retired_extra_pct": pct, "annual_cap_fen": fen}
)
policy_st = st.fixed_dictionaries(
    {
        "class_b_self_pay_pct": pct,
        "outpatient": med_st,
        "inpatient": med_st,
        "serious_illness": st.fixed_dictionaries(
            {"threshold_fen": fen, "ratio_pct": pct, "annual_cap_fen": fen}
        ),
        "assistance": st.dictionaries(
            st.sampled_from(("dibao", "tekun", "low_income")),
            st.fixed_dictionaries({"ratio_pct": pct, "annual_cap_fen": fen}),
        ),
    }
).map(pol.parse)
totals_st = st.builds(sp.Totals, fen, fen, fen, fen, fen)
case_st = st.fixed_dictionaries(
    {
        "policy": policy_st,
        "med_type": st.sampled_from(sp.MED_TYPES),
        "level": st.sampled_from(sp.LEVELS),
        "retired": st.booleans(),
        "category": st.sampled_from(sp.ASSISTANCE_CATEGORIES),
        "totals": totals_st,
        "first": st.booleans(),
        "balance": fen,
        "holders": st.lists(st.tuples(st.integers(1, 9), fen), max_size=3).map(tuple),
        "lines": lines_st.map(tuple),
    }
)


@settings(max_examples=300, deadline=None)
@given(case_st)
def test_parts_sum_and_bounds(case):
    s = run(**case)
    p, t = case["policy"], case["totals"]
    assert s.inscp_fen + s.preselfpay_fen + s.ownpay_fen == s.total_fen
    assert s.fund_pay_fen == s.hifp_pay_fen + s.hifmi_pay_fen + s.maf_pay_fen
    assert s.fund_pay_fen + s.account_pay_fen + s.mutual_aid_pay_fen + s.cash_pay_fen == s.total_fen
    assert min(s.hifp_pay_fen, s.hifmi_pay_fen, s.maf_pay_fen, s.account_pay_fen, s.cash_pay_fen) >= 0
    assert 0 <= s.deductible_fen <= s.inscp_fen
    assert s.fund_pay_fen <= s.inscp_fen  # no fund pays beyond the in-range amount
    assert s.account_pay_fen <= max(case["balance"], 0)
    # caps: never more than what was left
    med = p.med(s.med_type)
    assert s.hifp_pay_fen <= max(0, med.annual_cap_fen - t.hifp_fen(s.med_type))
    assert s.hifmi_pay_fen <= max(0, p.serious_illness.annual_cap_fen - t.hifmi_fen)
    if s.maf_pay_fen:
        assert s.maf_pay_fen <= max(0, p.assistance[case["category"]].annual_cap_fen - t.maf_fen)
    # floors never overpay
    ratio = min(100, med.ratio_pct[case["level"]] + (med.retired_extra_pct if case["retired"] else 0))
    assert s.hifp_pay_fen * 100 <= (s.inscp_fen - s.deductible_fen) * ratio
    if s.med_type == "outpatient":
        assert s.hifmi_pay_fen == 0
    after = t.plus(s)
    if t.hifp_fen(s.med_type) <= med.annual_cap_fen:
        assert after.hifp_fen(s.med_type) <= med.annual_cap_fen


@settings(max_examples=300, deadline=None)
@given(case_st, lines_st)
def test_monotone_in_the_bill(case, extra):
    small = run(**case)
    big = run(**{**case, "lines": case["lines"] + tuple(extra)})
    for f in ("hifp_pay_fen", "hifmi_pay_fen", "maf_pay_fen", "fund_pay_fen", "total_fen"):
        assert getattr(big, f) >= getattr(small, f), f


@settings(max_examples=200, deadline=None)
@given(case_st)
def test_refund_then_same_settlement_reproduces(case):
    s = run(**case)
    t = case["totals"]
    assert t.plus(s).minus(s.counted()) == t
    assert run(**{**case, "totals": t.plus(s).minus(s.counted())}) == s
