"""Bad input and attacks from issue 3: each gets a 4xx problem+json with the contract code and writes
nothing but the audit row (no consumption, no ec_token)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
import redis

from tests.support import problem
from voucher import token as tk
from voucher.models import EcToken, UsageRecord, VoucherUse

from .support import count_rows


def _nothing_written(app, code):
    assert count_rows(app, VoucherUse) == 0
    assert count_rows(app, EcToken) == 0
    assert count_rows(app, UsageRecord, result="accepted") == 0
    assert count_rows(app, UsageRecord, code=code) == 1


def _b64(obj) -> str:
    return tk.b64u(json.dumps(obj, separators=(",", ":")).encode())


def _refused(app, vd, inst, content, status, code):
    problem(vd.scan(inst, content), status, code)
    _nothing_written(app, code)


def test_alg_none(app, yb, vd):
    p, inst = yb.person(), yb.institution()
    real = vd.issue(p)["token"]
    h, c, _ = real.split(".")
    for alg in ("none", "None", "NONE"):
        header = _b64(json.loads(tk.b64u_decode(h)) | {"alg": alg})
        # the unsecured form has an empty signature part: not even a JWS of ours
        problem(vd.scan(inst, f"{header}.{c}."), 400, "VOUCHER_MALFORMED")
        problem(vd.scan(inst, f"{header}.{c}.{tk.b64u(b'x' * 64)}"), 422, "VOUCHER_SIGNATURE_INVALID")
    assert count_rows(app, VoucherUse) == 0 and count_rows(app, EcToken) == 0
    assert count_rows(app, UsageRecord, result="accepted") == 0


@pytest.mark.parametrize("secret_form", ["raw", "x", "pem", "jwk"])
def test_hs256_signed_with_our_public_key(app, yb, vd, client, secret_form):
    """The classic key-confusion attack: HMAC keyed with whatever public form a library might use."""
    p, inst = yb.person(), yb.institution()
    jwk = client.get("/.well-known/jwks.json").get_json()["keys"][0]
    raw = tk.b64u_decode(jwk["x"])
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    pem = Ed25519PublicKey.from_public_bytes(raw).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    secret = {"raw": raw, "x": jwk["x"].encode(), "pem": pem, "jwk": json.dumps(jwk).encode()}[secret_form]
    real = vd.issue(p)["token"]
    _, c, _ = real.split(".")
    h = _b64({"alg": "HS256", "kid": jwk["kid"], "typ": "vc+jwt"})
    sig = hmac.new(secret, f"{h}.{c}".encode(), hashlib.sha256).digest()
    _refused(app, vd, inst, f"{h}.{c}.{tk.b64u(sig)}", 422, "VOUCHER_SIGNATURE_INVALID")


def test_unknown_kid(app, yb, vd):
    p, inst = yb.person(), yb.institution()
    forged = vd.forge(p, header={"kid": "zzzz"})
    _refused(app, vd, inst, forged, 422, "VOUCHER_SIGNATURE_INVALID")


@pytest.mark.parametrize(
    "kid",
    [
        "../../etc/passwd",
        "k1' OR '1'='1",
        "k1; DROP TABLE voucher_signing_keys;--",
        "k1\x00",
        "",
        "a" * 17,
        7,
    ],
)
def test_kid_with_path_or_sql_characters(app, yb, vd, kid):
    p, inst = yb.person(), yb.institution()
    _refused(app, vd, inst, vd.forge(p, header={"kid": kid}), 400, "VOUCHER_MALFORMED")


@pytest.mark.parametrize("param", ["jku", "x5u", "jwk", "crit", "b64", "zip"])
def test_extra_header_parameters_are_refused(app, yb, vd, param):
    """A key URL, an embedded key or an unknown critical extension is never honoured."""
    p, inst = yb.person(), yb.institution()
    value = {"crit": ["b64"], "b64": False}.get(param, "https://attacker.example/k")
    _refused(app, vd, inst, vd.forge(p, header={param: value}), 400, "VOUCHER_MALFORMED")


def test_expired(app, yb, vd):
    p, inst = yb.person(), yb.institution()
    vd.backdate_activation(p)
    now = int(time.time())
    forged = vd.forge(p, claims={"iat": now - 120, "exp": now - 60})
    _refused(app, vd, inst, forged, 422, "VOUCHER_EXPIRED")


def test_expiry_leeway_is_small(app, yb, vd):
    p, inst = yb.person(), yb.institution()
    vd.backdate_activation(p)
    now = int(time.time())
    # 2 s past exp is inside the 5 s leeway; 10 s is not
    assert vd.scan(inst, vd.forge(p, claims={"iat": now - 62, "exp": now - 2})).status_code == 200
    problem(vd.scan(inst, vd.forge(p, claims={"iat": now - 70, "exp": now - 10})), 422, "VOUCHER_EXPIRED")


def test_iat_in_the_future_beyond_leeway(app, yb, vd):
    p, inst = yb.person(), yb.institution()
    now = int(time.time())
    forged = vd.forge(p, claims={"iat": now + 60, "exp": now + 120})
    _refused(app, vd, inst, forged, 422, "VOUCHER_SIGNATURE_INVALID")


def test_lifetime_over_the_maximum(app, yb, vd):
    p, inst = yb.person(), yb.institution()
    now = int(time.time())
    _refused(app, vd, inst, vd.forge(p, claims={"exp": now + 3600}), 422, "VOUCHER_SIGNATURE_INVALID")


@pytest.mark.parametrize(
    ("where", "value"),
    [("aud", "yb-app"), ("aud", ["ec"]), ("iss", "evil"), ("typ", "at+jwt"), ("typ", "JWT"), ("typ", None)],
)
def test_wrong_aud_iss_typ(app, yb, vd, where, value):
    p, inst = yb.person(), yb.institution()
    forged = vd.forge(p, header={"typ": value}) if where == "typ" else vd.forge(p, claims={where: value})
    _refused(app, vd, inst, forged, 422, "VOUCHER_SIGNATURE_INVALID")


def test_jti_without_issue_millisecond(app, yb, vd):
    p, inst = yb.person(), yb.institution()
    _refused(app, vd, inst, vd.forge(p, claims={"jti": "__abcdef"}), 400, "VOUCHER_MALFORMED")


@pytest.mark.parametrize("drop", ["sub", "jti", "iat", "exp"])
def test_missing_claims(app, yb, vd, drop):
    p, inst = yb.person(), yb.institution()
    _refused(app, vd, inst, vd.forge(p, drop=(drop,)), 400, "VOUCHER_MALFORMED")


def test_duplicate_claims(app, yb, vd):
    """Two `sub` members: parsers disagree on which wins, so the token is refused outright."""
    p, inst = yb.person(), yb.institution()
    sub = vd.sub_of(p)
    now = int(time.time())
    raw = (
        f'{{"iss":"yb","aud":"ec","sub":"{sub}","sub":"AAAAAAAA",'
        f'"iat":{now},"exp":{now + 60},"jti":"AAdupj01"}}'
    ).encode()
    _refused(app, vd, inst, vd.forge(p, raw_payload=raw), 400, "VOUCHER_MALFORMED")


def test_tampered_payload(app, yb, vd):
    p, other, inst = yb.person(), yb.person(), yb.institution()
    real = vd.issue(p)
    h, c, s = real["token"].split(".")
    claims = json.loads(tk.b64u_decode(c)) | {"sub": vd.sub_of(other)}
    _refused(app, vd, inst, f"{h}.{_b64(claims)}.{s}", 422, "VOUCHER_SIGNATURE_INVALID")


def test_tampered_qr_form(app, yb, vd):
    p, inst = yb.person(), yb.institution()
    content = vd.issue(p)["qr_content"]
    blob = bytearray(tk.b45decode(content[4:]))
    blob[60] ^= 0x01  # a bit inside the payload
    _refused(app, vd, inst, "YB1:" + tk.b45encode(bytes(blob)), 422, "VOUCHER_SIGNATURE_INVALID")


def test_signature_of_another_token(app, yb, vd):
    p, inst = yb.person(), yb.institution()
    a, b = vd.issue(p)["token"].split("."), vd.issue(p)["token"].split(".")
    _refused(app, vd, inst, f"{a[0]}.{a[1]}.{b[2]}", 422, "VOUCHER_SIGNATURE_INVALID")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t, q: t[: len(t) // 2],  # truncated compact
        lambda t, q: q[: len(q) // 2],  # truncated QR form
        lambda t, q: t.rsplit(".", 1)[0],  # two parts
        lambda t, q: t + ".x",  # four parts
        lambda t, q: t.replace("-", "+").replace("_", "/") + "==",  # standard base64 with padding
        lambda t, q: "!!!." + t.split(".", 1)[1],  # non-base64 header
        lambda t, q: q[:4] + q[4:].lower(),  # non-base45 characters
        lambda t, q: "YB1:",
        lambda t, q: "",
        lambda t, q: "....",
        lambda t, q: _b64([1, 2]) + "." + t.split(".", 1)[1],  # header not an object
        lambda t, q: base64.b64encode(t.encode()).decode(),
    ],
)
def test_truncated_or_non_base64_token(app, yb, vd, mangle):
    p, inst = yb.person(), yb.institution()
    code = vd.issue(p)
    _refused(app, vd, inst, mangle(code["token"], code["qr_content"]), 400, "VOUCHER_MALFORMED")


@pytest.mark.parametrize("value", [12345, None, ["a"], {"token": "x"}, True])
def test_qr_content_of_the_wrong_type(app, yb, vd, value):
    inst = yb.institution()
    _refused(app, vd, inst, value, 400, "VOUCHER_MALFORMED")


def test_100_kb_qr_content(app, yb, vd):
    p, inst = yb.person(), yb.institution()
    code = vd.issue(p)
    big = code["token"] + "A" * (100 * 1024)
    _refused(app, vd, inst, big, 400, "VOUCHER_MALFORMED")
    _refused_again = vd.scan(inst, "YB1:" + "0" * (100 * 1024))
    problem(_refused_again, 400, "VOUCHER_MALFORMED")


def test_access_token_presented_as_voucher(app, yb, vd):
    p, inst = yb.person(), yb.institution()
    _refused(app, vd, inst, p.access_token, 422, "VOUCHER_SIGNATURE_INVALID")


def test_refresh_token_presented_as_voucher(app, yb, vd):
    p, inst = yb.person(), yb.institution()
    _refused(app, vd, inst, p.refresh_token, 400, "VOUCHER_MALFORMED")


def test_voucher_used_as_access_token(app, yb, vd, client):
    p = yb.person()
    code = vd.issue(p)
    for value in (code["token"], code["qr_content"]):
        resp = client.post("/api/v1/vouchers", headers={"Authorization": f"Bearer {value}"})
        problem(resp, 401, "TOKEN_INVALID")
        resp = client.get("/api/v1/vouchers/usage", headers={"Authorization": f"Bearer {value}"})
        problem(resp, 401, "TOKEN_INVALID")


class _ReplayStoreDown:
    """Delegates to the real client but fails the voucher replay keys, as a Redis outage would."""

    def __init__(self, real):
        self._real = real

    def set(self, name, *args, **kwargs):
        if str(name).startswith("yb:vuse:"):
            raise redis.ConnectionError("replay store down")
        return self._real.set(name, *args, **kwargs)

    # The code's key is claimed by the script that also burns the request's nonce.
    def evalsha(self, sha, numkeys, *keys_and_args):
        self._refuse_replay_keys(keys_and_args[:numkeys])
        return self._real.evalsha(sha, numkeys, *keys_and_args)

    def eval(self, script, numkeys, *keys_and_args):
        self._refuse_replay_keys(keys_and_args[:numkeys])
        return self._real.eval(script, numkeys, *keys_and_args)

    @staticmethod
    def _refuse_replay_keys(keys):
        if any(str(k).startswith("yb:vuse:") for k in keys):
            raise redis.ConnectionError("replay store down")

    def __getattr__(self, item):
        return getattr(self._real, item)


def test_replay_store_down_fails_closed(app, yb, vd):
    p, inst = yb.person(), yb.institution()
    code = vd.issue(p)
    real = app.extensions["yibao.redis"]
    app.extensions["yibao.redis"] = _ReplayStoreDown(real)
    try:
        problem(vd.scan(inst, code["qr_content"]), 503, "REPLAY_STORE_UNAVAILABLE")
    finally:
        app.extensions["yibao.redis"] = real
    assert count_rows(app, VoucherUse) == 0 and count_rows(app, EcToken) == 0
    assert count_rows(app, UsageRecord) == 0
    # nothing was accepted, so the code still works once the store is back
    assert vd.scan(inst, code["qr_content"]).status_code == 200


def test_redis_unreachable_fails_closed(app_config, yb, vd):
    """A Redis that is not there at all: 503 with the contract code, not a 5xx crash."""
    from tests.support import Yb
    from yibao import create_app

    p, inst = yb.person(), yb.institution()
    code = vd.issue(p)
    down = create_app({**app_config, "REDIS_URL": "redis://127.0.0.1:1/0", "REDIS_SOCKET_TIMEOUT": 0.2})
    try:
        vd_down = type(vd)(Yb(down.test_client()), down)
        problem(vd_down.scan(inst, code["qr_content"]), 503, "REPLAY_STORE_UNAVAILABLE")
        assert count_rows(down, VoucherUse) == 0 and count_rows(down, EcToken) == 0
    finally:
        down.extensions["yibao.db"]["engine"].dispose()
    assert vd.scan(inst, code["qr_content"]).status_code == 200


def test_nbf_in_the_future_beyond_leeway(app, yb, vd):
    """Issue 10.3: a correctly signed code whose nbf lies ahead is refused like an iat ahead, unconsumed."""
    p, inst = yb.person(), yb.institution()
    vd.backdate_activation(p)
    now = int(time.time())
    forged = vd.forge(p, claims={"nbf": now + 60})
    _refused(app, vd, inst, forged, 422, "VOUCHER_SIGNATURE_INVALID")
    problem(vd.scan(inst, forged), 422, "VOUCHER_SIGNATURE_INVALID")  # still not consumed
    assert count_rows(app, VoucherUse) == 0


def test_nbf_within_leeway_or_past_is_honoured(app, yb, vd):
    p, inst = yb.person(), yb.institution()
    vd.backdate_activation(p)
    now = int(time.time())
    for nbf in (now - 30, now, now + 3):
        assert vd.scan(inst, vd.forge(p, claims={"nbf": nbf})).status_code == 200


@pytest.mark.parametrize("nbf", ["soon", 1.5, True, None, [1]])
def test_nbf_must_be_an_integer(app, yb, vd, nbf):
    p, inst = yb.person(), yb.institution()
    _refused(app, vd, inst, vd.forge(p, claims={"nbf": nbf}), 400, "VOUCHER_MALFORMED")
