"""Interoperability: an independent QR decoder and an independent JOSE library, offline."""

from __future__ import annotations

import base64
import io

import pytest
import zxingcpp
from joserfc import jws, jwt
from joserfc.jwk import KeySet
from PIL import Image

from voucher import token as tk


def _to_compact(scanned: str) -> str:
    """What a third-party scanner does with the QR text (README, "Token format")."""
    if not scanned.startswith("YB1:"):
        return scanned
    blob = tk.b45decode(scanned[4:])
    n = blob[0]
    header, payload, sig = blob[1 : 1 + n], blob[1 + n : -64], blob[-64:]
    enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    return f"{enc(header)}.{enc(payload)}.{enc(sig)}"


@pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")  # RFC 9864 prefers "Ed25519"
def test_png_decoded_by_zxing_verifies_with_joserfc_against_jwks(client, yb, vd):
    p = yb.person()
    body = vd.issue(p, query="qr=png")
    png = base64.b64decode(body["qr"].split(",", 1)[1])
    (found,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert found.format == zxingcpp.BarcodeFormat.QRCode
    compact = _to_compact(found.text)
    assert compact == body["token"]

    keyset = KeySet.import_key_set(client.get("/.well-known/jwks.json").get_json())
    token = jwt.decode(compact, keyset, algorithms=["EdDSA"])
    assert token.header["typ"] == "vc+jwt" and token.header["alg"] == "EdDSA"
    claims_registry = jwt.JWTClaimsRegistry(
        leeway=5,
        iss={"essential": True, "value": "yb"},
        aud={"essential": True, "value": "ec"},
        sub={"essential": True},
        jti={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
    )
    claims_registry.validate(token.claims)

    # a changed payload does not verify with the independent library either
    h, c, s = compact.split(".")
    forged = f"{h}.{tk.b64u(tk.b64u_decode(c).replace(b'yb', b'yc'))}.{s}"
    try:
        jws.deserialize_compact(forged, keyset, algorithms=["EdDSA"])
        raise AssertionError("tampered token verified")
    except Exception as exc:  # noqa: BLE001
        assert "signature" in type(exc).__name__.lower() or "BadSignature" in type(exc).__name__
