"""Operators' rules over the API and the CLI: every bad input is a 422 naming the field, nothing written."""

from __future__ import annotations

import json

import pytest

from tests.support import problem

QL = {"drug_code": "XA01", "max_quantity": 10, "window_days": 30}
RP = {"drug_code": "XA01", "window_days": 30, "max_institutions": 2}
IV = {"window_minutes": 60, "max_prefectures": 1}


def rules(yb) -> list:  # type: ignore[no-untyped-def]
    r = yb.admin("GET", "/supervision-rules")
    assert r.status_code == 200
    return r.get_json()["items"]


@pytest.mark.parametrize(
    ("kind", "params"), [("quantity_limit", QL), ("repeat_purchase", RP), ("identity_velocity", IV)]
)
def test_add_list_disable_enable_each_audited(yb, kind, params):
    r = yb.admin(
        "POST",
        "/supervision-rules",
        {"kind": kind, "params": params, "action": "warn", "description": "试点"},
        headers={"X-Operator-Id": "op-7"},
    )
    assert r.status_code == 201, r.get_json()
    rule = r.get_json()
    assert rule["rule_id"].startswith("SR") and rule["enabled"] is True
    assert {k: rule[k] for k in ("kind", "params", "action", "description")} == {
        "kind": kind,
        "params": params,
        "action": "warn",
        "description": "试点",
    }
    assert [x["rule_id"] for x in rules(yb)] == [rule["rule_id"]]
    path = f"/supervision-rules/{rule['rule_id']}"
    r = yb.admin("PATCH", path, {"enabled": False})
    assert r.status_code == 200 and r.get_json()["enabled"] is False
    assert yb.admin("PATCH", path, {"enabled": False}).status_code == 200  # no change: not audited
    assert yb.admin("PATCH", path, {"enabled": True}, headers={"X-Operator-Id": "op-8"}).status_code == 200
    changes = yb.admin("GET", f"{path}/changes").get_json()["items"]
    assert [(c["change"], c["operator"]) for c in changes] == [
        ("created", "admin:op-7"),
        ("disabled", "admin"),
        ("enabled", "admin:op-8"),
    ]
    assert changes[0]["before"] is None and changes[0]["after"]["enabled"] is True
    assert changes[1]["before"]["enabled"] is True and changes[1]["after"]["enabled"] is False
    assert all(c["at"] for c in changes)


def test_list_filters_and_pages(yb):
    ids = []
    for n in range(3):
        body = {"kind": "quantity_limit", "params": {**QL, "drug_code": f"X{n}"}, "action": "block"}
        ids.append(yb.admin("POST", "/supervision-rules", body).get_json()["rule_id"])
    yb.admin("POST", "/supervision-rules", {"kind": "identity_velocity", "params": IV, "action": "block"})
    yb.admin("PATCH", f"/supervision-rules/{ids[1]}", {"enabled": False})
    page = yb.admin("GET", "/supervision-rules?kind=quantity_limit&limit=2").get_json()
    assert [x["rule_id"] for x in page["items"]] == ids[:2]
    rest = yb.admin("GET", f"/supervision-rules?kind=quantity_limit&cursor={page['next_cursor']}").get_json()
    assert [x["rule_id"] for x in rest["items"]] == ids[2:] and rest["next_cursor"] is None
    off = yb.admin("GET", "/supervision-rules?enabled=false").get_json()["items"]
    assert [x["rule_id"] for x in off] == [ids[1]]


def _bad(**over):  # type: ignore[no-untyped-def]
    return {"kind": "quantity_limit", "params": dict(QL), "action": "block", **over}


def _params(**over):  # type: ignore[no-untyped-def]
    params = {**QL, **over}
    return _bad(params={k: v for k, v in params.items() if v is not ...})


BAD = {
    "unknown kind": (_bad(kind="price_limit"), {"kind"}),
    "no kind": ({"params": QL, "action": "block"}, {"kind"}),
    "unknown action": (_bad(action="deny"), {"action"}),
    "params not an object": (_bad(params=[1, 2]), {"params"}),
    "missing max_quantity": (_params(max_quantity=...), {"params.max_quantity"}),
    "missing drug_code": (_params(drug_code=...), {"params.drug_code"}),
    "negative max_quantity": (_params(max_quantity=-1), {"params.max_quantity"}),
    "zero max_quantity": (_params(max_quantity=0), {"params.max_quantity"}),
    "window of 0 days": (_params(window_days=0), {"params.window_days"}),
    "negative window": (_params(window_days=-3), {"params.window_days"}),
    "window too long": (_params(window_days=367), {"params.window_days"}),
    "window not an integer": (_params(window_days=1.5), {"params.window_days"}),
    "window as a string": (_params(window_days="7"), {"params.window_days"}),
    "unknown params key": (_params(max_institutions=2), {"params.max_institutions"}),
    "empty drug code": (_params(drug_code=""), {"params.drug_code"}),
    "drug code too long": (_params(drug_code="X" * 65), {"params.drug_code"}),
    "drug code not a string": (_params(drug_code=123), {"params.drug_code"}),
    "identity window 0": (
        {"kind": "identity_velocity", "params": {**IV, "window_minutes": 0}, "action": "warn"},
        {"params.window_minutes"},
    ),
    "identity with a drug code": (
        {"kind": "identity_velocity", "params": {**IV, "drug_code": "XA01"}, "action": "warn"},
        {"params.drug_code"},
    ),
    "repeat with zero institutions": (
        {"kind": "repeat_purchase", "params": {**RP, "max_institutions": 0}, "action": "warn"},
        {"params.max_institutions"},
    ),
    "repeat with max_quantity": (
        {"kind": "repeat_purchase", "params": {**RP, "max_quantity": 3}, "action": "warn"},
        {"params.max_quantity"},
    ),
    "description empty": (_bad(description=""), {"description"}),
    "unknown top-level field": (_bad(enabled=False), {"enabled"}),
}


def _fields(errors: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in errors.items():
        if isinstance(v, dict):
            out |= _fields(v, f"{prefix}{k}.")
        else:
            out.add(f"{prefix}{k}")
    return out


@pytest.mark.parametrize("case", list(BAD))
def test_bad_rule_definitions_are_refused_naming_the_field(yb, case):
    body, fields = BAD[case]
    r = yb.admin("POST", "/supervision-rules", body)
    assert _fields(problem(r, 422, "VALIDATION_FAILED")["errors"]) == fields
    assert rules(yb) == []


def test_drug_code_of_64_characters_is_accepted(yb):
    r = yb.admin("POST", "/supervision-rules", _params(drug_code="X" * 64))
    assert r.status_code == 201


@pytest.mark.parametrize("body", [{}, {"enabled": "false"}, {"enabled": 0}, {"enabled": True, "x": 1}])
def test_bad_patch_bodies(yb, body):
    rid = yb.admin("POST", "/supervision-rules", _bad()).get_json()["rule_id"]
    problem(yb.admin("PATCH", f"/supervision-rules/{rid}", body), 422, "VALIDATION_FAILED")
    assert rules(yb)[0]["enabled"] is True


def test_unknown_rule(yb):
    problem(
        yb.admin("PATCH", "/supervision-rules/SR000000000000", {"enabled": False}),
        404,
        "SUPERVISION_RULE_NOT_FOUND",
    )
    problem(yb.admin("GET", "/supervision-rules/nope/changes"), 404, "SUPERVISION_RULE_NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/admin/supervision-rules", _bad()),
        ("GET", "/api/v1/admin/supervision-rules", None),
        ("PATCH", "/api/v1/admin/supervision-rules/SR1", {"enabled": False}),
        ("GET", "/api/v1/admin/supervision-rules/SR1/changes", None),
        ("GET", "/api/v1/admin/supervision-alerts", None),
    ],
)
def test_non_operators_are_refused(client, yb, method, path, body):
    p = yb.person()
    for headers in ({}, {"Authorization": "Bearer wrong"}, p.auth):
        r = client.open(path, method=method, json=body, headers=headers)
        problem(r, 401, "ADMIN_AUTH_FAILED")
    assert rules(yb) == []


def test_the_openapi_document_shows_the_contract(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    post = doc["paths"]["/api/v1/admin/supervision-rules"]["post"]
    assert set(post["responses"]) >= {"201", "401", "422"}
    patch = doc["paths"]["/api/v1/admin/supervision-rules/{rule_id}"]["patch"]
    assert "SUPERVISION_RULE_NOT_FOUND" in patch["responses"]["404"]["x-problem-codes"]
    params = {p["name"] for p in doc["paths"]["/api/v1/admin/supervision-alerts"]["get"]["parameters"]}
    assert params >= {"rule_id", "since", "institution", "limit", "cursor"}
    me = doc["paths"]["/api/v1/supervision/alerts/me"]["get"]
    assert me["security"] == [{"UserBearer": []}]


# the CLI


def test_cli_add_list_disable_enable(runner, yb):
    out = runner.invoke(
        args=[
            "supervision",
            "rule",
            "add",
            "--kind",
            "quantity_limit",
            "--params",
            json.dumps(QL),
            "--action",
            "block",
            "--operator",
            "wang",
        ]
    )
    assert out.exit_code == 0, out.output
    rid = json.loads(out.output)["rule_id"]
    listed = runner.invoke(args=["supervision", "rule", "list"])
    assert [r["rule_id"] for r in json.loads(listed.output)] == [rid]
    assert json.loads(runner.invoke(args=["supervision", "rule", "disable", rid]).output)["enabled"] is False
    assert json.loads(runner.invoke(args=["supervision", "rule", "enable", rid]).output)["enabled"] is True
    history = json.loads(runner.invoke(args=["supervision", "rule", "history", rid]).output)
    assert [(c["change"], c["operator"]) for c in history] == [
        ("created", "cli:wang"),
        ("disabled", "cli:cli"),
        ("enabled", "cli:cli"),
    ]


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--kind", "nope", "--params", "{}", "--action", "block"], "kind"),
        (["--kind", "quantity_limit", "--params", "{not json", "--action", "block"], "not JSON"),
        (
            [
                "--kind",
                "quantity_limit",
                "--params",
                json.dumps({**QL, "window_days": 0}),
                "--action",
                "warn",
            ],
            "window_days",
        ),
    ],
)
def test_cli_refuses_bad_rules(runner, yb, args, text):
    out = runner.invoke(args=["supervision", "rule", "add", *args])
    assert out.exit_code == 2 and text in out.output
    assert rules(yb) == []


def test_cli_unknown_rule(runner):
    out = runner.invoke(args=["supervision", "rule", "disable", "SR404"])
    assert out.exit_code == 1 and "SUPERVISION_RULE_NOT_FOUND" in out.output
