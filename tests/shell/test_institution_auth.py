"""Institution HMAC request signing: the contract's headers, window, nonce and secret rotation."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import text

from tests.support import problem, sign_headers

PATH = "/api/v1/_test/inst"


def signed(client, inst, method="GET", path=PATH, body=b"", query="", **kw):
    h = sign_headers(inst.key_id, inst.secret, method, path, body, query=query, **kw)
    if body:
        h["Content-Type"] = "application/json"
    url = f"{path}?{query}" if query else path
    return client.open(url, method=method, data=body, headers=h), h


def test_good_signature_get_and_post(client, yb):
    inst = yb.institution()
    resp, _ = signed(client, inst)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["org_id"] == inst.org_id
    body = json.dumps({"a": 1}).encode()
    resp, _ = signed(client, inst, "POST", body=body)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["body_len"] == len(body)


def test_institutions_me_endpoint(yb):
    inst = yb.institution(kind="hospital", region="532901")
    resp = yb.as_institution(inst, "GET", "/institutions/me")
    assert resp.status_code == 200, resp.get_json()
    data = resp.get_json()
    assert data["org_id"] == inst.org_id and data["kind"] == "hospital" and data["region"] == "532901"
    assert "secret" not in data and "secret_enc" not in data


def test_bad_signature(client, yb):
    inst = yb.institution()
    h = sign_headers(inst.key_id, inst.secret, "GET", PATH, b"")
    h["X-Yb-Signature"] = ("0" if h["X-Yb-Signature"][0] != "0" else "1") + h["X-Yb-Signature"][1:]
    problem(client.get(PATH, headers=h), 401, "INSTITUTION_AUTH_FAILED")
    h = sign_headers(inst.key_id, "not-the-secret", "GET", PATH, b"")
    problem(client.get(PATH, headers=h), 401, "INSTITUTION_AUTH_FAILED")


def test_signature_of_other_method_or_path_refused(client, yb):
    inst = yb.institution()
    h = sign_headers(inst.key_id, inst.secret, "POST", PATH, b"")
    problem(client.get(PATH, headers=h), 401, "INSTITUTION_AUTH_FAILED")
    h = sign_headers(inst.key_id, inst.secret, "GET", "/api/v1/institutions/me", b"")
    problem(client.get(PATH, headers=h), 401, "INSTITUTION_AUTH_FAILED")


@pytest.mark.parametrize("skew", [-301, 301, -3600, 10**9])
def test_stale_timestamp_both_directions(client, yb, skew):
    inst = yb.institution()
    resp, _ = signed(client, inst, timestamp=int(time.time()) + skew)
    problem(resp, 401, "INSTITUTION_AUTH_FAILED")


def test_timestamp_inside_window_accepted(client, yb):
    inst = yb.institution()
    for skew in (-290, 290):
        resp, _ = signed(client, inst, timestamp=int(time.time()) + skew)
        assert resp.status_code == 200, resp.get_json()


@pytest.mark.parametrize("bad", ["", "abc", "-5", "1.5e9", "9" * 20])
def test_malformed_timestamp(client, yb, bad):
    inst = yb.institution()
    h = sign_headers(inst.key_id, inst.secret, "GET", PATH, b"")
    h["X-Yb-Timestamp"] = bad
    problem(client.get(PATH, headers=h), 401, "INSTITUTION_AUTH_FAILED")


def test_reused_nonce(client, yb):
    inst = yb.institution()
    resp, h = signed(client, inst, nonce="nonce-once-123")
    assert resp.status_code == 200
    problem(client.get(PATH, headers=h), 401, "INSTITUTION_AUTH_FAILED")  # exact replay
    resp, _ = signed(client, inst, nonce="nonce-once-123")  # fresh signature, same nonce
    problem(resp, 401, "INSTITUTION_AUTH_FAILED")


def test_failed_request_does_not_burn_nonce(client, yb):
    inst = yb.institution()
    h = sign_headers(inst.key_id, "wrong-secret", "GET", PATH, b"", nonce="n-keep-1")
    problem(client.get(PATH, headers=h), 401, "INSTITUTION_AUTH_FAILED")
    resp, _ = signed(client, inst, nonce="n-keep-1")
    assert resp.status_code == 200


def test_nonces_are_per_institution(client, yb):
    a, b = yb.institution(), yb.institution()
    assert signed(client, a, nonce="shared-nonce")[0].status_code == 200
    assert signed(client, b, nonce="shared-nonce")[0].status_code == 200


def test_overlong_nonce(client, yb):
    inst = yb.institution()
    resp, _ = signed(client, inst, nonce="n" * 129)
    problem(resp, 401, "INSTITUTION_AUTH_FAILED")


@pytest.mark.parametrize("missing", ["X-Yb-Key", "X-Yb-Timestamp", "X-Yb-Nonce", "X-Yb-Signature"])
def test_missing_header(client, yb, missing):
    inst = yb.institution()
    h = sign_headers(inst.key_id, inst.secret, "GET", PATH, b"")
    del h[missing]
    problem(client.get(PATH, headers=h), 401, "INSTITUTION_AUTH_FAILED")


def test_no_headers_at_all(client):
    problem(client.get(PATH), 401, "INSTITUTION_AUTH_FAILED")


def test_unknown_key_id(client, yb):
    inst = yb.institution()
    h = sign_headers("ak_doesnotexist", inst.secret, "GET", PATH, b"")
    problem(client.get(PATH, headers=h), 401, "INSTITUTION_AUTH_FAILED")


def test_body_tampered_after_signing(client, yb):
    inst = yb.institution()
    body = json.dumps({"amount_fen": 100}).encode()
    h = sign_headers(inst.key_id, inst.secret, "POST", PATH, body)
    h["Content-Type"] = "application/json"
    resp = client.post(PATH, data=json.dumps({"amount_fen": 999}).encode(), headers=h)
    problem(resp, 401, "INSTITUTION_AUTH_FAILED")


def test_query_string_is_signed(client, yb):
    inst = yb.institution()
    resp, _ = signed(client, inst, query="page=2&size=10")
    assert resp.status_code == 200
    assert resp.get_json()["q"] == {"page": "2", "size": "10"}
    h = sign_headers(inst.key_id, inst.secret, "GET", PATH, b"", query="page=2")
    problem(client.get(f"{PATH}?page=3", headers=h), 401, "INSTITUTION_AUTH_FAILED")
    h = sign_headers(inst.key_id, inst.secret, "GET", PATH, b"")  # signed without the query
    problem(client.get(f"{PATH}?page=3", headers=h), 401, "INSTITUTION_AUTH_FAILED")


def test_rotated_secret_via_admin(client, yb):
    inst = yb.institution()
    resp = yb.admin("POST", f"/institutions/{inst.org_id}/secret-rotations")
    assert resp.status_code == 201, resp.get_json()
    new = resp.get_json()
    assert new["org_id"] == inst.org_id and new["secret"] != inst.secret and new["key_id"] != inst.key_id
    assert signed(client, inst)[0].status_code == 401
    old_key_new_secret = type(inst)(inst.org_id, inst.key_id, new["secret"], inst.region, inst.kind)
    assert signed(client, old_key_new_secret)[0].status_code == 401
    fresh = type(inst)(inst.org_id, new["key_id"], new["secret"], inst.region, inst.kind)
    assert signed(client, fresh)[0].status_code == 200
    shown = yb.admin("GET", f"/institutions/{inst.org_id}").get_json()
    assert shown["key_id"] == new["key_id"] and "secret" not in shown


def test_rotate_unknown_institution(yb, rows):
    before = rows()
    problem(yb.admin("POST", "/institutions/org_nope/secret-rotations"), 404, "INSTITUTION_NOT_FOUND")
    assert rows() == before


def test_rotated_secret_via_cli(client, yb, runner):
    inst = yb.institution()
    result = runner.invoke(args=["institution", "rotate-secret", inst.org_id])
    assert result.exit_code == 0, result.output
    new = json.loads(result.output)
    assert signed(client, inst)[0].status_code == 401
    fresh = type(inst)(inst.org_id, new["key_id"], new["secret"], inst.region, inst.kind)
    assert signed(client, fresh)[0].status_code == 200


def test_disabled_institution(app, client, yb):
    inst = yb.institution()
    with app.extensions["yibao.db"]["engine"].begin() as conn:
        conn.execute(
            text("UPDATE institutions SET status = 'disabled' WHERE org_id = :o"), {"o": inst.org_id}
        )
    resp, _ = signed(client, inst)
    problem(resp, 403, "INSTITUTION_DISABLED")
    # A forged request for a disabled institution still fails as a bad signature (no status oracle).
    h = sign_headers(inst.key_id, "wrong", "GET", PATH, b"")
    problem(client.get(PATH, headers=h), 401, "INSTITUTION_AUTH_FAILED")


def test_uppercase_hex_signature_accepted(client, yb):
    inst = yb.institution()
    h = sign_headers(inst.key_id, inst.secret, "GET", PATH, b"")
    h["X-Yb-Signature"] = h["X-Yb-Signature"].upper()
    assert client.get(PATH, headers=h).status_code == 200
