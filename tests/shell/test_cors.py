"""CORS: same-origin by default; exact allowed origins from YIBAO_CORS_ORIGINS, no credentials."""

from __future__ import annotations

import pytest

from yibao import config, create_app

APP_ORIGIN = "https://app.example.cn"


@pytest.fixture
def cors_client(app_config):
    app = create_app({**app_config, "CORS_ORIGINS": (APP_ORIGIN,)})
    yield app.test_client()
    app.extensions["yibao.db"]["engine"].dispose()


def test_same_origin_by_default(client):
    resp = client.get("/healthz", headers={"Origin": APP_ORIGIN})
    assert resp.status_code == 200
    assert "Access-Control-Allow-Origin" not in resp.headers
    assert "Origin" in resp.headers["Vary"]


def test_allowed_origin_gets_the_headers_and_no_credentials(cors_client):
    resp = cors_client.get("/api/v1/accounts/me", headers={"Origin": APP_ORIGIN})
    assert resp.status_code == 401 and resp.mimetype == "application/problem+json"
    assert resp.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert "X-Request-Id" in resp.headers["Access-Control-Expose-Headers"]
    assert "Access-Control-Allow-Credentials" not in resp.headers


def test_other_origin_is_not_allowed(cors_client):
    resp = cors_client.get("/healthz", headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_preflight_of_an_allowed_origin(cors_client):
    resp = cors_client.options(
        "/api/v1/payment-orders",
        headers={
            "Origin": APP_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-yb-signature, idempotency-key",
        },
    )
    assert resp.status_code in (200, 204)
    assert resp.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]
    allowed = resp.headers["Access-Control-Allow-Headers"].lower()
    assert "x-yb-signature" in allowed and "idempotency-key" in allowed


@pytest.mark.parametrize("bad", ["*", "app.example.cn", "ftp://x.cn", "https://x.cn/path", "https://"])
def test_bad_origin_configuration_refused(monkeypatch, bad):
    monkeypatch.setenv("YIBAO_CORS_ORIGINS", f"https://ok.cn,{bad}")
    with pytest.raises(RuntimeError, match="YIBAO_CORS_ORIGINS"):
        config.load({})


def test_origins_from_the_environment(monkeypatch):
    monkeypatch.setenv("YIBAO_CORS_ORIGINS", " https://a.cn/ , http://127.0.0.1:5173 ")
    assert config.load({})["CORS_ORIGINS"] == ("https://a.cn", "http://127.0.0.1:5173")
