"""The server's own receiver check (payments.webhooks.verify) given hostile headers: always a clean False.

A receiver reads these headers from the network: a full-width or padded timestamp, a non-ASCII signature,
a missing or non-text value must never raise, and a timestamp is exactly ASCII digits (int() also takes
"１０００", " 1000", "+1000" and "1_000", which are not what was signed).
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payments import webhooks

SECRET = webhooks.new_secret()
BODY = b'{"type":"payment.paid"}'
NOW = int(time.time())


@pytest.fixture(autouse=True)
def _clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The receiver's clock stays at NOW: the window check must not depend on how long the suite ran."""
    monkeypatch.setattr(webhooks, "time", SimpleNamespace(time=lambda: NOW))


def hdrs(**over: object) -> dict:
    good = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(NOW),
        "webhook-signature": webhooks.sign(SECRET, "msg_1", NOW, BODY),
    }
    return {**good, **over}


def test_a_good_delivery_verifies():
    assert webhooks.verify(SECRET, hdrs(), BODY) is True
    assert webhooks.verify(SECRET, hdrs(), BODY + b" ") is False


FULL_WIDTH = str(NOW).translate(str.maketrans("0123456789", "０１２３４５６７８９"))


@pytest.mark.parametrize(
    "over",
    [
        {"webhook-timestamp": FULL_WIDTH},  # int() reads it as NOW: the signature of NOW would pass
        {"webhook-timestamp": f" {NOW}"},
        {"webhook-timestamp": f"{NOW}\n"},
        {"webhook-timestamp": f"+{NOW}"},
        {"webhook-timestamp": f"{str(NOW)[:3]}_{str(NOW)[3:]}"},
        {"webhook-timestamp": "1" * 13},
        {"webhook-timestamp": ""},
        {"webhook-timestamp": None},
        {"webhook-timestamp": NOW},  # not text
        {"webhook-id": None},
        {"webhook-id": "msg_\udcff"},  # a byte that is not UTF-8, as a surrogateescape decoder hands it over
        {"webhook-signature": None},
        {"webhook-signature": "v1,签名"},  # compare_digest raises TypeError on non-ASCII str
        {"webhook-signature": "v1,\xe9\xe9"},
        {"webhook-signature": "v1,!!!not-base64"},
        {"webhook-signature": ""},
    ],
)
def test_hostile_headers_give_false(over):
    assert webhooks.verify(SECRET, hdrs(**over), BODY) is False


def test_missing_headers_give_false():
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        headers = hdrs()
        del headers[name]
        assert webhooks.verify(SECRET, headers, BODY) is False


def test_the_signature_of_a_full_width_timestamp_is_not_accepted_either():
    """Signed over the very text of the header: still refused, a timestamp is ASCII digits only."""
    sig = webhooks.sign(SECRET, "msg_1", FULL_WIDTH, BODY)  # type: ignore[arg-type]
    assert (
        webhooks.verify(SECRET, hdrs(**{"webhook-timestamp": FULL_WIDTH, "webhook-signature": sig}), BODY)
        is False
    )


@given(
    st.dictionaries(
        st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature"]),
        st.one_of(st.text(st.characters(codec=None)), st.none(), st.integers()),
    )
)
def test_any_header_values_never_raise(over):
    assert webhooks.verify(SECRET, hdrs(**over), BODY) in (True, False)


@pytest.mark.parametrize("skew", [-301, 301])
def test_a_timestamp_out_of_the_window_gives_false(skew):
    ts = NOW + skew
    headers = hdrs(
        **{"webhook-timestamp": str(ts), "webhook-signature": webhooks.sign(SECRET, "msg_1", ts, BODY)}
    )
    assert webhooks.verify(SECRET, headers, BODY) is False
    assert webhooks.verify(SECRET, headers, BODY, tolerance=301) is True
