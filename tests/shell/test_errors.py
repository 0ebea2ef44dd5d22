"""problem+json everywhere: unknown routes and methods, languages, field maps, no leaks on 500."""

from __future__ import annotations

import pytest

from tests.shell.support import SQL_LEAK
from tests.support import ADMIN_TOKEN, problem


def test_unknown_route(client):
    body = problem(client.get("/api/v1/nope"), 404, "NOT_FOUND")
    assert body["type"] == "urn:yibao:problem:not_found" and body["instance"] == "/api/v1/nope"
    problem(client.get("/nope"), 404, "NOT_FOUND")
    problem(client.post("/api/v1/nope", json={}), 404, "NOT_FOUND")


def test_wrong_method(client):
    resp = client.get("/api/v1/activations")
    problem(resp, 405, "METHOD_NOT_ALLOWED")
    assert "POST" in resp.headers["Allow"]
    problem(
        client.delete("/api/v1/admin/persons", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}),
        405,
        "METHOD_NOT_ALLOWED",
    )


def test_detail_language(client):
    zh = problem(
        client.get("/api/v1/nope", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}), 404, "NOT_FOUND"
    )
    assert zh["detail"] == "资源不存在。"
    en = problem(client.get("/api/v1/nope", headers={"Accept-Language": "en-US,en;q=0.9"}), 404, "NOT_FOUND")
    assert en["detail"] == "The resource does not exist."
    assert problem(client.get("/api/v1/nope"), 404, "NOT_FOUND")["detail"] == en["detail"]  # default
    resp = client.get("/api/v1/nope", headers={"Accept-Language": "zh"})
    assert resp.headers["Content-Language"] == "zh-CN" and "不存在" in resp.get_json()["detail"]
    resp = client.get("/api/v1/nope", headers={"Accept-Language": "fr, zh-TW;q=0.5"})
    assert "不存在" in resp.get_json()["detail"]
    resp = client.post("/api/v1/admin/persons", json={}, headers={"Accept-Language": "zh-CN"})
    assert problem(resp, 401, "ADMIN_AUTH_FAILED")["detail"] == "经办机构令牌缺失或错误。"


def test_validation_keeps_field_map(yb):
    resp = yb.admin(
        "POST",
        "/persons",
        {"name": 1, "insurance_type": "x", "insured_region": "532900", "bogus": True},
        headers={"Accept-Language": "zh-CN"},
    )
    body = problem(resp, 422, "VALIDATION_FAILED")
    assert set(body["errors"]) == {"name", "id_number", "insurance_type", "bogus"}
    assert all(isinstance(v, list) and v for v in body["errors"].values())
    assert body["detail"] == "请求参数不合法。"


def test_field_messages_follow_accept_language(yb):
    body = {"name": 1, "id_number": "123", "insurance_type": "x", "insured_region": "532900", "bogus": True}
    zh = problem(
        yb.admin("POST", "/persons", body, headers={"Accept-Language": "zh-CN"}), 422, "VALIDATION_FAILED"
    )
    assert zh["errors"] == {
        "name": ["不是有效的字符串。"],
        "id_number": ["不是有效的18位居民身份证号码（ID_NUMBER_INVALID）。"],
        "insurance_type": ["必须是以下之一：employee, resident。"],
        "bogus": ["未知字段。"],
    }
    en = problem(yb.admin("POST", "/persons", body), 422, "VALIDATION_FAILED")
    assert en["errors"]["bogus"] == ["Unknown field."] and en["errors"]["name"] == ["Not a valid string."]
    missing = yb.admin("POST", "/persons", {}, headers={"Accept-Language": "zh-CN"}).get_json()
    assert missing["errors"]["name"] == ["缺少必填字段。"]
    # a domain error carrying a field map is translated the same way
    inst = yb.institution(kind="pharmacy")
    r = yb.admin(
        "PATCH",
        f"/institutions/{inst.org_id}",
        {"services": ["online_otc"]},
        headers={"Accept-Language": "zh"},
    )
    assert problem(r, 422, "VALIDATION_FAILED")["errors"] == {"services": ["online_otc 仅适用于网上药店。"]}


@pytest.mark.parametrize(
    "message,expected",
    [
        ("Length must be between 1 and 64.", "长度必须在 1 到 64 之间。"),
        (
            "Must be greater than or equal to 1 and less than or equal to 200.",
            "必须大于等于 1 且小于等于 200。",
        ),
        ("Must be greater than or equal to 0.", "必须大于等于 0。"),
        ("Longer than maximum length 128.", "长度不能大于 128。"),
        ("Something only the future knows.", "Something only the future knows."),  # passed through
    ],
)
def test_field_message_patterns(message, expected):
    from yibao.errors import localize_field_messages

    assert localize_field_messages({"f": [message], "g": {"0": [message]}}, "zh-CN") == {
        "f": [expected],
        "g": {"0": [expected]},
    }
    assert localize_field_messages({"f": [message]}, "en") == {"f": [message]}


def test_unexpected_exception_is_opaque(client, caplog):
    resp = client.get("/api/v1/_test/boom", headers={"X-Request-Id": "boom-1"})
    body = problem(resp, 500, "INTERNAL_ERROR")
    text = resp.get_data(as_text=True)
    assert (
        "Traceback" not in text
        and "SELECT" not in text
        and "hunter2" not in text
        and "RuntimeError" not in text
    )
    assert body["request_id"] == "boom-1"
    # The server keeps the stack trace for the operator.
    assert any(r.exc_info and SQL_LEAK in str(r.exc_info[1]) for r in caplog.records)


def test_database_error_is_opaque(app, client, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from yibao.registry import services

    def broken(*_a, **_k):
        raise OperationalError(
            "SELECT * FROM persons WHERE id_index = 'abc'", {}, Exception("connection refused")
        )

    monkeypatch.setattr(services, "require_person", broken)
    resp = client.get("/api/v1/admin/persons/psn_x", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    problem(resp, 503, "DATABASE_UNAVAILABLE")
    assert "SELECT" not in resp.get_data(as_text=True)


def test_integrity_error_is_opaque(client, monkeypatch):
    from sqlalchemy.exc import IntegrityError

    from yibao.registry import services

    def broken(*_a, **_k):
        raise IntegrityError(
            "INSERT INTO persons (id_number_enc) VALUES ('x')", {}, Exception("duplicate key")
        )

    monkeypatch.setattr(services, "require_person", broken)
    resp = client.get("/api/v1/admin/persons/psn_x", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    problem(resp, 500, "INTERNAL_ERROR")
    assert "INSERT" not in resp.get_data(as_text=True)


def test_problem_has_request_id_header(client):
    resp = client.get("/api/v1/nope", headers={"X-Request-Id": "abc-123"})
    assert resp.headers["X-Request-Id"] == "abc-123" and resp.get_json()["request_id"] == "abc-123"


def test_unknown_route_wins_over_body_checks(client):
    """A wrong URL is a 404 whatever the body; a wrong method a 405."""
    problem(client.post("/api/v1/nope", data="x", content_type="text/plain"), 404, "NOT_FOUND")
    problem(client.post("/api/v1/nope", data="{", content_type="application/json"), 404, "NOT_FOUND")
    problem(
        client.put("/api/v1/activations", data="{", content_type="application/json"),
        405,
        "METHOD_NOT_ALLOWED",
    )


PUBLIC_POSTS = ["/api/v1/activations", "/api/v1/sandbox/identity-proofs", "/api/v1/sessions/refresh"]


@pytest.mark.parametrize("url", PUBLIC_POSTS)
def test_public_endpoints_refuse_bad_bodies(app, client, rows, url):
    before = rows()
    problem(
        client.post(url, data="id_number=1", content_type="application/x-www-form-urlencoded"),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    problem(client.post(url, data="{'a': 1}", content_type="application/json"), 400, "MALFORMED_JSON")
    problem(client.post(url, data="[" * 100_000, content_type="application/json"), 400, "MALFORMED_JSON")
    big = '{"x": "' + "y" * app.config["MAX_CONTENT_LENGTH"] + '"}'
    problem(client.post(url, data=big, content_type="application/json"), 413, "PAYLOAD_TOO_LARGE")
    for body in ([], "null", 1):
        err = problem(client.post(url, json=body), 422, "VALIDATION_FAILED")
        assert err["errors"]
    err = problem(client.post(url), 422, "VALIDATION_FAILED")  # no body at all
    assert err["errors"]
    assert rows() == before
