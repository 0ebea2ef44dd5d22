"""A refused institution signature says why (`reason`), in the problem and in the log, never the secret."""

from __future__ import annotations

import logging
import time

import pytest

from tests.support import problem, sign_headers
from yibao import create_app
from yibao.auth.institutions import REASONS, string_to_sign

PATH = "/api/v1/institutions/me"


def _reason(resp, status=401, code="INSTITUTION_AUTH_FAILED") -> dict:
    body = problem(resp, status, code)
    assert body["reason"] in REASONS
    return body


def test_missing_and_malformed_headers(client, yb):
    inst = yb.institution()
    assert _reason(client.get(PATH))["reason"] == "HEADERS_MISSING"
    h = sign_headers(inst.key_id, inst.secret, "GET", PATH, b"")
    del h["X-Yb-Nonce"]
    assert _reason(client.get(PATH, headers=h))["reason"] == "HEADERS_MISSING"
    h = sign_headers(inst.key_id, inst.secret, "GET", PATH, b"")
    h["X-Yb-Signature"] = "zz" * 32
    assert _reason(client.get(PATH, headers=h))["reason"] == "HEADERS_MISSING"


def test_timestamp_skew(client, yb):
    inst = yb.institution()
    h = sign_headers(inst.key_id, inst.secret, "GET", PATH, b"", timestamp=int(time.time()) - 301)
    assert _reason(client.get(PATH, headers=h))["reason"] == "TIMESTAMP_SKEW"


def test_unknown_and_rotated_out_key(client, yb):
    inst = yb.institution()
    h = sign_headers("ak_never_issued", inst.secret, "GET", PATH, b"")
    assert _reason(client.get(PATH, headers=h))["reason"] == "KEY_UNKNOWN"
    assert yb.admin("POST", f"/institutions/{inst.org_id}/secret-rotations").status_code == 201
    h = sign_headers(inst.key_id, inst.secret, "GET", PATH, b"")  # the old pair
    assert _reason(client.get(PATH, headers=h))["reason"] == "KEY_UNKNOWN"


def test_signature_mismatch_shows_the_canonical_string_in_development(client, yb):
    inst = yb.institution()
    h = sign_headers(inst.key_id, "not-the-secret", "GET", PATH, b"", nonce="n-dev-1")
    body = _reason(client.get(PATH, headers=h))
    assert body["reason"] == "SIGNATURE_MISMATCH"
    assert body["string_to_sign"] == string_to_sign("GET", PATH, "", h["X-Yb-Timestamp"], "n-dev-1", b"")
    assert inst.secret not in str(body)


def test_signature_mismatch_hides_the_canonical_string_when_debug_is_off(app_config, yb):
    app = create_app({**app_config, "SIGNATURE_DEBUG": False})
    try:
        inst = yb.institution()
        h = sign_headers(inst.key_id, "not-the-secret", "GET", PATH, b"")
        body = _reason(app.test_client().get(PATH, headers=h))
        assert body["reason"] == "SIGNATURE_MISMATCH" and "string_to_sign" not in body
    finally:
        app.extensions["yibao.db"]["engine"].dispose()


def test_production_never_debugs_signatures(monkeypatch):
    from yibao import config

    prod = {
        "YIBAO_ENV": "production",
        "SECRET_KEY": "s" * 48,
        "ADMIN_TOKEN": "a" * 32,
        "REDIS_URL": "redis://r:6379/0",
    }
    for k, v in prod.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("YIBAO_SIGNATURE_DEBUG", "1")
    assert config.load({})["SIGNATURE_DEBUG"] is False


def test_nonce_reused(client, yb):
    inst = yb.institution()
    assert (
        client.get(
            PATH, headers=sign_headers(inst.key_id, inst.secret, "GET", PATH, b"", nonce="nn-1")
        ).status_code
        == 200
    )
    h = sign_headers(inst.key_id, inst.secret, "GET", PATH, b"", nonce="nn-1")
    assert _reason(client.get(PATH, headers=h))["reason"] == "NONCE_REUSED"


def test_disabled_key(client, yb):
    inst = yb.institution()
    assert yb.admin("PATCH", f"/institutions/{inst.org_id}", {"status": "disabled"}).status_code == 200
    h = sign_headers(inst.key_id, inst.secret, "GET", PATH, b"")
    body = _reason(client.get(PATH, headers=h), 403, "INSTITUTION_DISABLED")
    assert body["reason"] == "KEY_DISABLED"


@pytest.mark.parametrize("case", ["unknown", "mismatch"])
def test_log_line_names_reason_and_key_never_the_secret(client, yb, caplog, case):
    inst = yb.institution()
    key = "ak_never_issued" if case == "unknown" else inst.key_id
    h = sign_headers(key, "wrong-secret" if case == "mismatch" else inst.secret, "GET", PATH, b"")
    with caplog.at_level(logging.WARNING, logger="yibao.auth.institutions"):
        client.get(PATH, headers=h)
    [rec] = [r for r in caplog.records if r.name == "yibao.auth.institutions"]
    assert rec.reason == ("KEY_UNKNOWN" if case == "unknown" else "SIGNATURE_MISMATCH")
    assert rec.key_id == key
    text = rec.getMessage() + repr(vars(rec))
    assert inst.secret not in text and h["X-Yb-Signature"] not in text


def test_the_path_is_signed_as_the_server_decodes_it(client, yb):
    """docs/sdk.md: a path sent with percent-escapes is checked against its decoded form (the query is
    signed as sent): signing the escaped form is a SIGNATURE_MISMATCH, and development's string_to_sign
    shows the path the server signed."""
    inst = yb.institution()
    escaped = "/api/v1/institutions/m%65"  # the same resource as PATH
    h = sign_headers(inst.key_id, inst.secret, "GET", escaped, b"", nonce="n-escaped-1")
    body = _reason(client.get(escaped, headers=h))
    assert body["reason"] == "SIGNATURE_MISMATCH"
    assert body["string_to_sign"].split("\n")[1] == PATH
    h = sign_headers(inst.key_id, inst.secret, "GET", PATH, b"", nonce="n-escaped-2")
    assert client.get(escaped, headers=h).status_code == 200
