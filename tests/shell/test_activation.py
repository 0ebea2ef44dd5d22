"""Activation with a real-name proof, access tokens, rotating refresh tokens and logout."""

from __future__ import annotations

import threading
import time

import jwt
import pytest

from tests.support import TEST_SECRET, make_id_number, make_name, problem
from yibao import crypto
from yibao.auth import tokens
from yibao.identity.providers import PROOF_TYP, SandboxIdentityProvider

WHOAMI = "/api/v1/_test/whoami"


def activation(client, id_number, name, proof, device_id="device-0001", **headers):
    body = {"id_number": id_number, "name": name, "identity_proof": proof, "device_id": device_id}
    return client.post("/api/v1/activations", json=body, headers=headers)


def whoami(client, access_token):
    return client.get(WHOAMI, headers={"Authorization": f"Bearer {access_token}"})


def refresh(client, token):
    return client.post("/api/v1/sessions/refresh", json={"refresh_token": token})


def test_good_proof_activates(client, yb, rows):
    p = yb.person(activate=False)
    before = rows()
    resp = activation(client, p.id_number, p.name, yb.proof(p.id_number, p.name))
    assert resp.status_code == 201, resp.get_json()
    data = resp.get_json()
    assert data["psn_no"] == p.psn_no and data["token_type"] == "Bearer" and data["expires_in"] == 900
    assert whoami(client, data["access_token"]).get_json()["psn_no"] == p.psn_no
    assert rows()["auth_sessions"] == before["auth_sessions"] + 1
    shown = yb.admin("GET", f"/persons/{p.psn_no}").get_json()
    assert shown["activated"] is True


def test_lower_case_x_id_number_activates(client, yb):
    from yibao.registry.validators import id_check_digit

    first17 = next(
        f"11010519491231{n:03d}" for n in range(1000) if id_check_digit(f"11010519491231{n:03d}") == "X"
    )
    id_number = first17 + "X"
    p = yb.person(id_number=id_number, activate=False)
    resp = activation(client, id_number.lower(), p.name, yb.proof(id_number.lower(), p.name))
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["psn_no"] == p.psn_no


def _forge(claims_from: str, key: bytes | None, alg: str) -> str:
    claims = jwt.decode(claims_from, options={"verify_signature": False})
    return jwt.encode(claims, key, algorithm=alg, headers={"typ": PROOF_TYP})


def test_forged_proofs_refused(client, yb, rows):
    p = yb.person(activate=False)
    good = yb.proof(p.id_number, p.name)
    head, payload, sig = good.split(".")
    tampered_sig = f"{head}.{payload}.{sig[:-2]}{'AA' if sig[-2:] != 'AA' else 'BB'}"
    forged = [
        tampered_sig,
        _forge(good, None, "none"),
        _forge(good, b"another-key-of-sufficient-length-32b!", "HS256"),
        _forge(good, crypto.derive_key(TEST_SECRET, "auth/access-token"), "HS256"),  # another purpose's key
        "not-a-jwt",
        jwt.encode({"sub": "x"}, crypto.derive_key(TEST_SECRET, "identity/sandbox-proof"), algorithm="HS256"),
    ]
    before = rows()
    for proof in forged:
        problem(activation(client, p.id_number, p.name, proof), 401, "IDENTITY_PROOF_INVALID")
    assert rows() == before
    # The good proof still works: failures did not consume it.
    assert activation(client, p.id_number, p.name, good).status_code == 201


def test_proof_for_another_person(client, yb, rows):
    a = yb.person(activate=False)
    b = yb.person(activate=False)
    before = rows()
    resp = activation(client, b.id_number, b.name, yb.proof(a.id_number, a.name))
    problem(resp, 403, "IDENTITY_MISMATCH")
    resp = activation(client, b.id_number, a.name, yb.proof(b.id_number, b.name))  # same ID, other name
    problem(resp, 403, "IDENTITY_MISMATCH")
    assert rows() == before


def test_expired_proof(client, yb, rows):
    p = yb.person(activate=False)
    stale = SandboxIdentityProvider(TEST_SECRET, ttl=-30).issue(id_number=p.id_number, name=p.name)
    before = rows()
    problem(activation(client, p.id_number, p.name, stale), 401, "IDENTITY_PROOF_INVALID")
    assert rows() == before


def test_reused_proof(client, yb, rows):
    p = yb.person(activate=False)
    proof = yb.proof(p.id_number, p.name)
    assert activation(client, p.id_number, p.name, proof).status_code == 201
    before = rows()
    problem(activation(client, p.id_number, p.name, proof, "device-0002"), 401, "IDENTITY_PROOF_INVALID")
    assert rows() == before


def test_guardian_proof_is_not_an_identity_proof(client, yb):
    p = yb.person(activate=False)
    child = make_id_number(birth="20180101")
    gproof = yb.proof(p.id_number, p.name, guardian_of=child)
    problem(activation(client, p.id_number, p.name, gproof), 401, "IDENTITY_PROOF_INVALID")


def test_wrong_name_for_id_number(client, yb, rows):
    p = yb.person(activate=False)
    other = make_name()
    before = rows()
    # The proof vouches for (id, other name); the registry says the name is different.
    problem(activation(client, p.id_number, other, yb.proof(p.id_number, other)), 403, "IDENTITY_MISMATCH")
    assert rows() == before


def test_person_not_in_registry(client, yb, rows):
    id_number, name = make_id_number(), make_name()
    before = rows()
    problem(activation(client, id_number, name, yb.proof(id_number, name)), 404, "PERSON_NOT_FOUND")
    assert rows() == before


def test_suspended_person(client, yb, rows):
    p = yb.person(status="suspended", activate=False)
    before = rows()
    problem(activation(client, p.id_number, p.name, yb.proof(p.id_number, p.name)), 403, "PERSON_SUSPENDED")
    assert rows() == before


def test_suspension_stops_existing_tokens(client, yb):
    p = yb.person()
    assert yb.admin("PATCH", f"/persons/{p.psn_no}", {"status": "suspended"}).status_code == 200
    problem(whoami(client, p.access_token), 403, "PERSON_SUSPENDED")
    problem(refresh(client, p.refresh_token), 403, "PERSON_SUSPENDED")


@pytest.mark.parametrize(
    "body,field",
    [
        ({"name": "张三", "identity_proof": "x", "device_id": "device-1"}, "id_number"),
        (
            {"id_number": "110105194912310021", "name": "张三", "identity_proof": "x", "device_id": "d"},
            "device_id",
        ),
        ({"id_number": "123", "name": "张三", "identity_proof": "x", "device_id": "device-1"}, "id_number"),
        ({"id_number": 110, "name": "张三", "identity_proof": "x", "device_id": "device-1"}, "id_number"),
        (
            {"id_number": "x", "name": "张三", "identity_proof": "x", "device_id": "device-1", "extra": 1},
            "extra",
        ),
        ({"id_number": "x", "name": "张三", "identity_proof": "", "device_id": "device-1"}, "identity_proof"),
    ],
)
def test_activation_bad_input(client, rows, body, field):
    before = rows()
    err = problem(client.post("/api/v1/activations", json=body), 422, "VALIDATION_FAILED")
    assert field in err["errors"]
    assert rows() == before


def test_sandbox_proof_bad_input(client):
    err = problem(
        client.post(
            "/api/v1/sandbox/identity-proofs", json={"id_number": "110105194912310022", "name": "张三"}
        ),
        422,
        "VALIDATION_FAILED",
    )
    assert "id_number" in err["errors"]


def test_sandbox_disabled_by_setting(make_app, yb):
    p = yb.person(activate=False)
    off = make_app(SANDBOX_IDENTITY_ENABLED=False).test_client()
    resp = off.post("/api/v1/sandbox/identity-proofs", json={"id_number": p.id_number, "name": p.name})
    problem(resp, 404, "SANDBOX_DISABLED")
    # Without a configured provider, proofs made elsewhere are refused (fail closed).
    proof = yb.proof(p.id_number, p.name)
    problem(activation(off, p.id_number, p.name, proof), 401, "IDENTITY_PROOF_INVALID")


def test_sandbox_disabled_in_production(monkeypatch, app_config, make_app):
    monkeypatch.setenv("YIBAO_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("ADMIN_TOKEN", "admin-token-of-production-0123456789")
    monkeypatch.delenv("YIBAO_SANDBOX_IDENTITY", raising=False)
    cfg = {k: v for k, v in app_config.items() if k != "SANDBOX_IDENTITY_ENABLED"}
    from yibao import create_app

    prod = create_app(cfg)
    try:
        assert prod.config["SANDBOX_IDENTITY_ENABLED"] is False
        resp = prod.test_client().post(
            "/api/v1/sandbox/identity-proofs", json={"id_number": make_id_number(), "name": "张三"}
        )
        problem(resp, 404, "SANDBOX_DISABLED")
        # Even a bad body gets the 404: the disabled endpoint does not reveal its schema.
        problem(
            prod.test_client().post("/api/v1/sandbox/identity-proofs", json={"x": 1}), 404, "SANDBOX_DISABLED"
        )
    finally:
        prod.extensions["yibao.db"]["engine"].dispose()


def test_production_requires_secret_key(monkeypatch):
    monkeypatch.setenv("YIBAO_ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    from yibao import config

    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        config.load({})


def test_refresh_rotation(client, yb, rows):
    p = yb.person()
    resp = refresh(client, p.refresh_token)
    assert resp.status_code == 200, resp.get_json()
    pair = resp.get_json()
    assert pair["refresh_token"] != p.refresh_token and pair["access_token"] != p.access_token
    assert whoami(client, pair["access_token"]).status_code == 200
    assert whoami(client, p.access_token).status_code == 200  # the old access token lives until expiry
    resp = refresh(client, pair["refresh_token"])
    assert resp.status_code == 200
    assert rows()["refresh_tokens"] == 3


def test_replayed_refresh_token_revokes_family(client, yb):
    p = yb.person()
    new = refresh(client, p.refresh_token).get_json()
    assert whoami(client, new["access_token"]).status_code == 200
    problem(refresh(client, p.refresh_token), 401, "REFRESH_TOKEN_REUSED")
    problem(whoami(client, new["access_token"]), 401, "TOKEN_INVALID")
    problem(whoami(client, p.access_token), 401, "TOKEN_INVALID")
    problem(refresh(client, new["refresh_token"]), 401, "REFRESH_TOKEN_INVALID")
    # A new activation opens a new, working family.
    yb.activate(p)
    assert whoami(client, p.access_token).status_code == 200


def test_refresh_with_unknown_or_malformed_token(client, yb, rows):
    yb.person()
    before = rows()
    problem(refresh(client, "rt_unknown"), 401, "REFRESH_TOKEN_INVALID")
    problem(client.post("/api/v1/sessions/refresh", json={"refresh_token": 5}), 422, "VALIDATION_FAILED")
    problem(client.post("/api/v1/sessions/refresh", json={}), 422, "VALIDATION_FAILED")
    assert rows() == before


def test_expired_refresh_token(make_app, yb):
    short = make_app(REFRESH_TOKEN_TTL=-1).test_client()
    p = yb.person(activate=False)
    data = activation(short, p.id_number, p.name, yb.proof(p.id_number, p.name)).get_json()
    problem(refresh(short, data["refresh_token"]), 401, "REFRESH_TOKEN_INVALID")


def test_new_device_ends_old_session(client, yb):
    p = yb.person()
    old_access, old_refresh = p.access_token, p.refresh_token
    yb.activate(p, device_id="second-phone")
    problem(whoami(client, old_access), 401, "TOKEN_INVALID")
    problem(refresh(client, old_refresh), 401, "REFRESH_TOKEN_INVALID")
    assert whoami(client, p.access_token).status_code == 200


def test_concurrent_refresh_at_most_one_succeeds(app, yb):
    p = yb.person()
    n = 8
    barrier = threading.Barrier(n)
    results: list[int] = []
    lock = threading.Lock()

    def go() -> None:
        c = app.test_client()
        barrier.wait()
        r = refresh(c, p.refresh_token)
        with lock:
            results.append(r.status_code)

    threads = [threading.Thread(target=go) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == n
    assert results.count(200) <= 1
    assert all(s in (200, 401) for s in results), results


def _claims(access_token: str) -> dict:
    return jwt.decode(access_token, options={"verify_signature": False})


def test_access_token_expiry(client, yb):
    p = yb.person()
    c = _claims(p.access_token)
    assert c["exp"] - c["iat"] == 900
    expired = tokens.issue_access_token(TEST_SECRET, psn_no=p.psn_no, session_id=c["sid"], ttl=-60)
    problem(whoami(client, expired), 401, "TOKEN_INVALID")
    live = tokens.issue_access_token(TEST_SECRET, psn_no=p.psn_no, session_id=c["sid"], ttl=60)
    assert whoami(client, live).status_code == 200


def test_short_ttl_app_token_expires(make_app, yb):
    fast = make_app(ACCESS_TOKEN_TTL=1).test_client()
    p = yb.person(activate=False)
    data = activation(fast, p.id_number, p.name, yb.proof(p.id_number, p.name)).get_json()
    assert whoami(fast, data["access_token"]).status_code == 200
    time.sleep(7)  # past expiry plus the 5 s leeway
    problem(whoami(fast, data["access_token"]), 401, "TOKEN_INVALID")


def _sign(claims: dict, typ: str = "at+jwt", key: bytes | None = None, alg: str = "HS256") -> str:
    key = crypto.derive_key(TEST_SECRET, "auth/access-token") if key is None and alg != "none" else key
    return jwt.encode(claims, key, algorithm=alg, headers={"typ": typ})


def test_wrong_typ_aud_iss_alg_key(client, yb):
    p = yb.person()
    c = _claims(p.access_token)
    assert whoami(client, _sign(c)).status_code == 200  # the re-signed original is fine
    bad = [
        _sign(c, typ="JWT"),
        _sign(c, typ="yb-identity-proof"),
        _sign({**c, "aud": "someone-else"}),
        _sign({**c, "iss": "evil"}),
        _sign({k: v for k, v in c.items() if k != "sid"}),
        _sign({**c, "sub": "psn_other"}),
        _sign({**c, "sid": "0" * 32}),
        _sign(c, alg="none"),
        _sign(c, key=b"another-key-another-key-another-key!"),
        p.refresh_token,
        "garbage",
    ]
    for token in bad:
        problem(whoami(client, token), 401, "TOKEN_INVALID")


def test_missing_or_malformed_authorization(client):
    problem(client.get(WHOAMI), 401, "AUTHENTICATION_REQUIRED")
    problem(client.get(WHOAMI, headers={"Authorization": "Basic abc"}), 401, "AUTHENTICATION_REQUIRED")
    problem(client.get(WHOAMI, headers={"Authorization": "Bearer "}), 401, "AUTHENTICATION_REQUIRED")


def test_logout(client, yb):
    p = yb.person()
    resp = client.delete("/api/v1/sessions/current", headers=p.auth)
    assert resp.status_code == 204
    problem(whoami(client, p.access_token), 401, "TOKEN_INVALID")
    problem(refresh(client, p.refresh_token), 401, "REFRESH_TOKEN_INVALID")
    problem(client.delete("/api/v1/sessions/current", headers=p.auth), 401, "TOKEN_INVALID")
    problem(client.delete("/api/v1/sessions/current"), 401, "AUTHENTICATION_REQUIRED")


def test_tokens_carry_no_pii(yb):
    p = yb.person()
    for token in (p.access_token, yb.proof(p.id_number, p.name)):
        claims = jwt.decode(token, options={"verify_signature": False})
        flat = repr(claims) + repr(jwt.get_unverified_header(token))
        assert p.id_number not in flat and p.name not in flat


def test_concurrent_activations_leave_one_live_session(app, yb, rows):
    """Two phones activating at once: the later one wins, never both."""
    p = yb.person(activate=False)
    n = 6
    proofs = [yb.proof(p.id_number, p.name) for _ in range(n)]
    barrier = threading.Barrier(n)
    statuses: list[int] = []
    lock = threading.Lock()

    def go(i: int) -> None:
        c = app.test_client()
        barrier.wait()
        r = activation(c, p.id_number, p.name, proofs[i], device_id=f"phone-{i:04d}")
        with lock:
            statuses.append(r.status_code)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert statuses == [201] * n
    from sqlalchemy import text

    with app.extensions["yibao.db"]["engine"].connect() as conn:
        live = conn.execute(text("SELECT COUNT(*) FROM auth_sessions WHERE revoked_at IS NULL")).scalar_one()
    assert live == 1


def test_persons_me_shows_the_caller_masked(yb, client):
    p = yb.person(region="110105", balance=100)
    resp = yb.as_user(p, "GET", "/persons/me")
    assert resp.status_code == 200, resp.get_json()
    me = resp.get_json()
    assert me["psn_no"] == p.psn_no and me["insured_region"] == "110105"
    assert me["name_masked"] != p.name and me["id_number_masked"] != p.id_number
    assert p.id_number not in resp.get_data(as_text=True)
    assert client.get("/api/v1/persons/me").status_code == 401
