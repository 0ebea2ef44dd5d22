"""Issue 10 item 4: OPTIONS answers like any other route (204 + Allow; unknown path 404 problem+json)."""

from __future__ import annotations

import re

import pytest

from tests.support import problem


def _allow(resp) -> set[str]:
    return set(re.split(r",\s*", resp.headers["Allow"]))


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/api/v1/admin/persons", {"GET", "POST"}),
        ("/api/v1/admin/persons/P123", {"GET", "PATCH"}),
        ("/api/v1/sessions/refresh", {"POST"}),
        ("/api/v1/openapi.json", {"GET"}),
        ("/healthz", {"GET"}),
    ],
)
def test_options_is_204_with_the_methods_of_the_path(client, path, methods):
    resp = client.open(path, method="OPTIONS")
    assert resp.status_code == 204
    assert resp.get_data() == b""
    assert "Content-Type" not in resp.headers
    assert _allow(resp) == methods | {"OPTIONS"} | ({"HEAD"} if "GET" in methods else set())


def test_options_on_every_documented_path_is_204(client, app):
    spec = client.get("/api/v1/openapi.json").get_json()
    for path, ops in spec["paths"].items():
        url = re.sub(r"\{[^}]+\}", "X1", path)
        resp = client.open(url, method="OPTIONS")
        assert resp.status_code == 204, (path, resp.status_code, resp.get_data(as_text=True)[:200])
        documented = {m.upper() for m in ops if m in {"get", "post", "put", "patch", "delete"}}
        assert documented <= _allow(resp), path


def test_options_on_an_unknown_path_is_404_problem(client):
    problem(client.open("/api/v1/nowhere", method="OPTIONS"), 404, "NOT_FOUND")
