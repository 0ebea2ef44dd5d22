"""The sequential probes of bench/payments.py alternate (small, big, small, big...): a drift of the
machine over the probes falls on both sides alike."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bench.payments import PROBE_ROUNDS, alternating


def test_two_probes_alternate_in_rounds() -> None:
    a, b = [f"a{i}" for i in range(8)], [f"b{i}" for i in range(8)]
    assert alternating(a, b, rounds=4) == [
        (0, ["a0", "a1"]),
        (1, ["b0", "b1"]),
        (0, ["a2", "a3"]),
        (1, ["b2", "b3"]),
        (0, ["a4", "a5"]),
        (1, ["b4", "b5"]),
        (0, ["a6", "a7"]),
        (1, ["b6", "b7"]),
    ]


@given(st.integers(0, 50), st.integers(0, 50), st.integers(1, 8))
def test_every_order_is_paid_once_in_order(n_a: int, n_b: int, rounds: int) -> None:
    a, b = [f"a{i}" for i in range(n_a)], [f"b{i}" for i in range(n_b)]
    chunks = alternating(a, b, rounds)
    assert [o for side, c in chunks if side == 0 for o in c] == a
    assert [o for side, c in chunks if side == 1 for o in c] == b
    assert all(c for _, c in chunks)  # no empty round is run
    assert len(chunks) <= 2 * rounds


def test_the_default_is_several_rounds() -> None:
    assert PROBE_ROUNDS >= 2
