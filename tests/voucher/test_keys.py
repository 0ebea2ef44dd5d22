"""Signing keys: JWKS, encryption at rest, first-key creation race, CLI rotation and retirement."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select

from tests.support import problem
from voucher import keys
from voucher import token as tk
from voucher.models import SigningKey
from yibao.db import db, utcnow


def _jwks(client):
    resp = client.get("/.well-known/jwks.json")
    assert resp.status_code == 200
    return resp


def test_jwks_publishes_the_key_with_cache_headers(client, yb, vd):
    resp = _jwks(client)
    assert "max-age=" in resp.headers["Cache-Control"] and "public" in resp.headers["Cache-Control"]
    (jwk,) = resp.get_json()["keys"]
    assert jwk == {
        "kty": "OKP",
        "crv": "Ed25519",
        "kid": jwk["kid"],
        "alg": "EdDSA",
        "use": "sig",
        "x": jwk["x"],
    }
    assert "d" not in jwk
    p = yb.person()
    h, c, s = vd.issue(p)["token"].split(".")
    assert json.loads(tk.b64u_decode(h))["kid"] == jwk["kid"]
    Ed25519PublicKey.from_public_bytes(tk.b64u_decode(jwk["x"])).verify(
        tk.b64u_decode(s), f"{h}.{c}".encode()
    )


def test_jwks_is_not_under_api_prefix(client):
    assert client.get("/api/v1/.well-known/jwks.json").status_code == 404


def test_private_key_is_encrypted_at_rest(app, client):
    _jwks(client)
    with app.app_context(), db.uow(readonly=True) as uow:
        row = uow.session.scalars(select(SigningKey)).one()
        ring = app.extensions["yibao.voucher.keyring"]
        private = ring.signing_key().private
        from cryptography.hazmat.primitives import serialization

        raw = private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        assert tk.b64u(raw) not in row.private_enc and raw.hex() not in row.private_enc
        # the ciphertext is bound to its kid: moved to another row it does not decrypt
        from yibao import crypto

        try:
            crypto.decrypt(row.private_enc, purpose=keys.KEY_PURPOSE, aad="other")
            raise AssertionError("decrypted under the wrong kid")
        except Exception as exc:  # noqa: BLE001 - InvalidTag
            assert type(exc).__name__ == "InvalidTag"


def test_first_key_creation_is_race_safe(app):
    """Eight workers find no key at once: exactly one key is created and all sign with it."""
    results, errors = [], []
    barrier = threading.Barrier(8)

    def worker():
        try:
            with app.app_context():
                ring = keys.KeyRing(lambda ro: db.uow(readonly=ro))
                barrier.wait()
                results.append(ring.signing_key().kid)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(results)) == 1
    with app.app_context(), db.uow(readonly=True) as uow:
        assert uow.session.query(SigningKey).count() == 1


def test_cli_generate_is_idempotent(runner):
    first = json.loads(runner.invoke(args=["voucher-keys", "generate"]).output)
    second = json.loads(runner.invoke(args=["voucher-keys", "generate"]).output)
    assert first["created"] is True and second["created"] is False
    assert [k["status"] for k in second["keys"]] == ["signing"]


def test_rotation_new_key_signs_old_key_still_verifies(app, runner, client, yb, vd):
    p, inst = yb.person(), yb.institution()
    old = vd.issue(p)
    old_kid = json.loads(tk.b64u_decode(old["token"].split(".")[0]))["kid"]
    result = runner.invoke(args=["voucher-keys", "rotate"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["superseded"] == [old_kid] and out["signing"] != old_kid
    new = vd.issue(p)
    assert json.loads(tk.b64u_decode(new["token"].split(".")[0]))["kid"] == out["signing"]
    kids = {k["kid"] for k in _jwks(client).get_json()["keys"]}
    assert kids == {old_kid, out["signing"]}
    assert vd.scan(inst, old["qr_content"]).status_code == 200
    assert vd.scan(inst, new["qr_content"]).status_code == 200
    listing = json.loads(runner.invoke(args=["voucher-keys", "list"]).output)
    assert {k["kid"]: k["status"] for k in listing} == {old_kid: "verifying", out["signing"]: "signing"}


def test_old_key_retires_after_its_tokens_expired(app, runner, client, yb, vd):
    p, inst = yb.person(), yb.institution()
    old = vd.issue(p)
    old_kid = json.loads(tk.b64u_decode(old["token"].split(".")[0]))["kid"]
    runner.invoke(args=["voucher-keys", "rotate"])
    with app.app_context(), db.uow() as uow:
        row = uow.session.get(SigningKey, old_kid)
        # the window covers the longest lifetime, leeway and the cache refresh
        assert row.retire_after - row.superseded_at >= timedelta(seconds=300 + 5 + keys.REFRESH_SECONDS)
        row.retire_after = utcnow() - timedelta(seconds=1)
        uow.commit()
    out = json.loads(runner.invoke(args=["voucher-keys", "retire"]).output)
    assert out["retired"] == [old_kid]
    assert old_kid not in {k["kid"] for k in _jwks(client).get_json()["keys"]}
    problem(vd.scan(inst, old["qr_content"]), 422, "VOUCHER_SIGNATURE_INVALID")


def test_compromised_key_is_withdrawn_at_once(app, runner, client, yb, vd):
    p, inst = yb.person(), yb.institution()
    old = vd.issue(p)
    kid = json.loads(tk.b64u_decode(old["token"].split(".")[0]))["kid"]
    result = runner.invoke(args=["voucher-keys", "retire", "--kid", kid])
    assert result.exit_code == 0, result.output
    problem(vd.scan(inst, old["qr_content"]), 422, "VOUCHER_SIGNATURE_INVALID")
    new = vd.issue(p)  # a fresh key is created on first need
    assert json.loads(tk.b64u_decode(new["token"].split(".")[0]))["kid"] != kid
    assert vd.scan(inst, new["qr_content"]).status_code == 200
    assert runner.invoke(args=["voucher-keys", "retire", "--kid", kid]).exit_code != 0


def test_rotation_reaches_other_workers_within_the_refresh_interval(app, yb, vd):
    """Another process rotated: this worker keeps its cache until the refresh interval, then signs anew."""
    p = yb.person()
    ring = app.extensions["yibao.voucher.keyring"]
    first = vd.issue(p)
    kid0 = json.loads(tk.b64u_decode(first["token"].split(".")[0]))["kid"]
    with app.app_context(), db.uow() as uow:
        new, _ = keys.rotate(uow, max_token_lifetime=300, leeway=5)
        uow.commit()
        new_kid = new.kid
    kid1 = json.loads(tk.b64u_decode(vd.issue(p)["token"].split(".")[0]))["kid"]
    assert kid1 == kid0  # cached
    ring._loaded_at = time.monotonic() - keys.REFRESH_SECONDS - 1  # the interval has passed
    kid2 = json.loads(tk.b64u_decode(vd.issue(p)["token"].split(".")[0]))["kid"]
    assert kid2 == new_kid


def test_unknown_kid_from_a_fresh_rotation_verifies_at_once(app, yb, vd):
    """A token signed by a worker that already rotated verifies on a worker whose cache is older."""
    from tests.support import Yb
    from yibao import create_app

    p, inst = yb.person(), yb.institution()
    vd.issue(p)  # warms this app's cache
    other = create_app(app.config)
    try:
        with other.app_context(), db.uow() as uow:
            keys.rotate(uow, max_token_lifetime=300, leeway=5)
            uow.commit()
        other_vd = type(vd)(Yb(other.test_client()), other)
        fresh = other_vd.issue(p)
    finally:
        other.extensions["yibao.db"]["engine"].dispose()
    assert vd.scan(inst, fresh["qr_content"]).status_code == 200
