"""Signing and webhook helpers: shapes, bad input, verification rules."""

from __future__ import annotations

import re

import pytest

from yibao_client import signing, webhooks

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BODY = '{"type":"payment.paid","data":{"note":"退款"}}'.encode()


def test_sign_makes_four_headers_with_a_fresh_nonce_each_time():
    a = signing.sign("s", "get", "/api/v1/institutions/me", key_id="ak_1")
    b = signing.sign("s", "GET", "/api/v1/institutions/me", key_id="ak_1")
    assert set(a) == {"X-Yb-Key", "X-Yb-Timestamp", "X-Yb-Nonce", "X-Yb-Signature"}
    assert re.fullmatch(r"[0-9a-f]{24}", a["X-Yb-Nonce"]) and a["X-Yb-Nonce"] != b["X-Yb-Nonce"]
    assert re.fullmatch(r"[0-9a-f]{64}", a["X-Yb-Signature"])
    assert signing.canonical_string("get", "/x", 1, "n", b"").startswith("GET\n/x\n1\nn\n")


def test_a_bare_question_mark_is_no_query():
    assert signing.canonical_string("GET", "/x?", 1, "n", b"") == signing.canonical_string(
        "GET", "/x", 1, "n", b""
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"path_and_query": "api/v1/x"},
        {"nonce": "with space"},
        {"nonce": "é"},
        {"nonce": "x" * 129},
        {"timestamp": "-1"},
        {"timestamp": "１２"},  # full-width digits
    ],
)
def test_canonical_string_refuses_what_the_server_would(kwargs):
    args = {"method": "GET", "path_and_query": "/x", "timestamp": 1, "nonce": "n", "body": b"", **kwargs}
    with pytest.raises(ValueError):
        signing.canonical_string(**args)


def test_bad_key_id_refused():
    with pytest.raises(ValueError):
        signing.sign("s", "GET", "/x", key_id="ak 1")


def hdrs(ts: int = 1000, sig: str | None = None, msg_id: str = "msg_1") -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sig if sig is not None else webhooks.sign(SECRET, msg_id, ts, BODY),
    }


def test_verify_accepts_a_good_signature_in_any_header_case():
    assert webhooks.verify(SECRET, hdrs(), BODY, now=1000)
    upper = {k.upper(): v for k, v in hdrs().items()}
    assert webhooks.verify(SECRET, upper, BODY, now=1000)


def test_verify_any_of_several_signatures():
    good = webhooks.sign(SECRET, "msg_1", 1000, BODY)
    other = webhooks.sign("whsec_" + "QUJD" * 8, "msg_1", 1000, BODY)
    assert webhooks.verify(SECRET, hdrs(sig=f"{other} v2,abc {good}"), BODY, now=1000)
    assert not webhooks.verify(SECRET, hdrs(sig=f"{other} v2,{good[3:]}"), BODY, now=1000)


@pytest.mark.parametrize(
    ("headers", "body", "now"),
    [
        (hdrs(), BODY + b" ", 1000),  # body changed
        (hdrs(), BODY, 1000 + 301),  # too old
        (hdrs(), BODY, 1000 - 301),  # from the future
        (hdrs(msg_id="msg_2") | {"webhook-signature": hdrs()["webhook-signature"]}, BODY, 1000),
        ({"webhook-id": "msg_1", "webhook-timestamp": "1000"}, BODY, 1000),  # no signature
        (hdrs() | {"webhook-timestamp": "１０００"}, BODY, 1000),
        (hdrs() | {"webhook-timestamp": " 1000"}, BODY, 1000),
        (hdrs(sig="v1,签名"), BODY, 1000),  # non-ASCII never raises
        (
            hdrs() | {"webhook-id": "msg_\udcff"},
            BODY,
            1000,
        ),  # a non-UTF-8 byte, as a surrogateescape decoder gives it
        (hdrs() | {"webhook-signature": "v1,\udcff"}, BODY, 1000),
        (hdrs() | {"webhook-timestamp": "1000\n"}, BODY, 1000),
        (hdrs() | {"webhook-timestamp": "+1000"}, BODY, 1000),
        (hdrs() | {"webhook-timestamp": "1_000"}, BODY, 1000),
        (hdrs(sig="v1,!!!not-base64"), BODY, 1000),
        (hdrs(sig=""), BODY, 1000),
    ],
)
def test_verify_refuses(headers, body, now):
    assert webhooks.verify(SECRET, headers, body, now=now) is False


def test_tolerance_is_configurable():
    assert webhooks.verify(SECRET, hdrs(), BODY, now=1000 + 600, tolerance=600)


def test_malformed_secret_is_a_configuration_error():
    with pytest.raises(ValueError):
        webhooks.verify("whsec_***", hdrs(), BODY, now=1000)
