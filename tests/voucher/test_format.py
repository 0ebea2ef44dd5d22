"""The token format and the QR encoder: round trips, strict parsing, equality with qrcode's output."""

from __future__ import annotations

import io
import time

import pytest
import qrcode.util
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from qrcode.main import QRCode

from voucher import qr
from voucher import token as tk
from voucher.claims import checked_claims
from voucher.errors import Refusal
from voucher.keys import KeyRing


@given(st.binary(max_size=300))
def test_base45_round_trip(data):
    text = tk.b45encode(data)
    assert set(text) <= set(tk.B45)
    assert tk.b45decode(text) == data


def test_base45_rfc9285_vectors():
    assert tk.b45encode(b"AB") == "BB8"
    assert tk.b45encode(b"Hello!!") == "%69 VD92EX0"
    assert tk.b45encode(b"base-45") == "UJCLQE7W581"
    assert tk.b45decode("QED8WEX0") == b"ietf!"
    for bad in ("GGW", "ZZZ", "A", "abc"):
        with pytest.raises(tk.Malformed):
            tk.b45decode(bad)


@given(st.binary(max_size=200))
def test_base64url_strict_round_trip(data):
    assert tk.b64u_decode(tk.b64u(data)) == data


@pytest.mark.parametrize("bad", ["a", "ab=", "a+b/", "YQ==", "YR"])
def test_base64url_rejects_padding_alphabet_and_non_canonical(bad):
    with pytest.raises(tk.Malformed):
        tk.b64u_decode(bad)


class _NoKeys(KeyRing):
    def __init__(self) -> None:  # no database: every kid is unknown
        pass

    def public_key(self, kid):
        return None


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=500), st.binary(max_size=400).map(lambda b: "YB1:" + tk.b45encode(b))))
def test_verifier_never_fails_on_arbitrary_input(content):
    """Any text ends in a refusal code, never an unexpected exception (a 5xx)."""
    with pytest.raises(Refusal) as err:
        checked_claims(_NoKeys(), content, time.time())
    assert err.value.code in {"VOUCHER_MALFORMED", "VOUCHER_SIGNATURE_INVALID"}


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=qr.ALNUM, min_size=1, max_size=700))
def test_matrix_equals_qrcode_with_the_same_fixed_mask(content):
    q = QRCode(error_correction=qr.EC_LEVEL, mask_pattern=qr.MASK, border=0)
    q.add_data(qrcode.util.QRData(content.encode(), mode=qrcode.util.MODE_ALPHA_NUM))
    q.make(fit=True)
    assert qr.version_for(content) == q.version
    assert qr.matrix(content) == q.modules


@settings(max_examples=15, deadline=None)
@given(st.text(alphabet=qr.ALNUM, min_size=1, max_size=400))
def test_png_decodes_with_zxing(content):
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(qr.png(content))))
    assert [b.text for b in found] == [content]


def test_qr_rejects_lowercase():
    with pytest.raises(ValueError):
        qr.matrix("abc")


def test_alphanumeric_capacity_of_version_10_m():
    """ISO 18004 table 7: version 10 at level M holds 311 alphanumeric characters."""
    assert qr.version_for("A" * 311) == 10
    assert qr.version_for("A" * 312) == 11


def test_qr_form_header_length_bounds():
    for blob in (b"\x00" + b"x" * 80, b"\xff" + b"x" * 80):
        with pytest.raises(tk.Malformed):
            tk.split("YB1:" + tk.b45encode(blob))


def _reference_b45decode(text: str) -> bytes:
    """RFC 9285 section 4.2, written as the RFC reads (the oracle for the fast decoder)."""
    if len(text) % 3 == 1:
        raise tk.Malformed("length")
    out = bytearray()
    for i in range(0, len(text), 3):
        chunk = text[i : i + 3]
        if any(ch not in tk.B45 for ch in chunk):
            raise tk.Malformed("alphabet")
        digits = [tk.B45.index(ch) for ch in chunk]
        n = sum(d * 45**k for k, d in enumerate(digits))
        if n > (0xFFFF if len(chunk) == 3 else 0xFF):
            raise tk.Malformed("overflow")
        out += n.to_bytes(2 if len(chunk) == 3 else 1, "big")
    return bytes(out)


@given(st.text(alphabet=tk.B45 + "a\x00é:\u0660", max_size=60) | st.text(max_size=30))
def test_base45_decoder_agrees_with_the_rfc_reading(text):
    """Every string, valid or not (overflowing triples, NUL, non-ASCII, lowercase, a dangling
    character): the fast decoder returns what the RFC's reading returns, or refuses where it refuses."""
    try:
        expected = _reference_b45decode(text)
    except tk.Malformed:
        with pytest.raises(tk.Malformed):
            tk.b45decode(text)
    else:
        assert tk.b45decode(text) == expected
