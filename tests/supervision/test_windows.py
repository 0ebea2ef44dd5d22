"""The window arithmetic against a naive count, through the database (hypothesis)."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supervision import checks

from .support import NOW

_codes = itertools.count(1)


@pytest.fixture
def ctx(sup, person, shops):  # type: ignore[no-untyped-def]
    return sup, sup.person_id(person), [sup.institution_id(s) for s in shops]


sale = st.tuples(
    st.integers(min_value=-3 * 86400 - 2, max_value=0),  # seconds before now (some exactly on the edge)
    st.integers(min_value=1, max_value=4),  # units
    st.integers(min_value=0, max_value=2),  # which shop
    st.booleans(),  # refunded whole
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sales=st.lists(sale, max_size=6),
    limit=st.integers(min_value=1, max_value=12),
    shops_max=st.integers(min_value=1, max_value=3),
    now_shift_us=st.sampled_from([-1, 0, 1]),
    this=st.integers(min_value=1, max_value=4),
)
def test_rolling_window_counts_match_a_naive_count(ctx, sales, limit, shops_max, now_shift_us, this):
    sup, pid, iids = ctx
    code = f"H{next(_codes)}"
    sup.quantity_limit(code, max_quantity=limit, window_days=3, action="warn")
    sup.rule("repeat_purchase", action="warn", drug_code=code, window_days=3, max_institutions=shops_max)
    for seconds, units, shop, refunded in sales:
        ref = sup.sell(pid, iids[shop], [(code, units)], at=NOW + timedelta(seconds=seconds))
        if refunded:
            sup.refund(ref)
    now = NOW + timedelta(microseconds=now_shift_us)
    start = now - timedelta(days=3)
    counted = [(s, u, sh) for s, u, sh, r in sales if not r and NOW + timedelta(seconds=s) > start]
    total = sum(u for _, u, _ in counted) + this
    institutions = len({sh for _, _, sh in counted} | {0})
    verdict: checks.Verdict = sup.check(pid, iids[0], [(code, this)], now=now)
    kinds = {w["kind"]: w["evidence"] for w in verdict.warnings}
    assert ("quantity_limit" in kinds) == (total > limit)
    assert ("repeat_purchase" in kinds) == (institutions > shops_max)
    if "quantity_limit" in kinds:
        assert kinds["quantity_limit"]["total_quantity"] == total
    if "repeat_purchase" in kinds:
        assert kinds["repeat_purchase"]["institutions"] == institutions
