"""Alerts: the operators' masked list with filters and keyset pages, the person's own list, the summary."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from supervision import checks
from tests.support import problem

from .support import NOW


@pytest.fixture
def world(sup, yb, person, shops):  # type: ignore[no-untyped-def]
    """Alerts of two rules, two persons, two institutions, create and pay stages."""
    pid, other = sup.person_id(person), yb.person()
    oid = sup.person_id(other)
    a, b, _ = (sup.institution_id(s) for s in shops)
    block = sup.quantity_limit("XA01", max_quantity=2)
    warn = sup.rule("repeat_purchase", action="warn", drug_code="XA01", window_days=30, max_institutions=1)
    sup.sell(pid, a, [("XA01", 1)], at=NOW - timedelta(days=1))
    with pytest.raises(checks.SupervisionBlocked):
        sup.check(pid, b, [("XA01", 2)], order_ref="PO-1", now=NOW)  # block + warn
    sup.check(oid, a, [("XA01", 1)], order_ref="PO-2", now=NOW + timedelta(hours=1))  # nothing
    sup.sell(oid, a, [("XA01", 1)], order_ref="PO-3", at=NOW + timedelta(hours=2))
    sup.check(oid, b, [("XA01", 1)], order_ref="PO-4", now=NOW + timedelta(hours=3))  # warn
    return {"person": person, "other": other, "block": block, "warn": warn, "shops": shops}


def test_operators_list_alerts_masked_with_filters_and_pages(yb, world):
    items = yb.admin("GET", "/supervision-alerts").get_json()["items"]
    assert [(i["rule_id"], i["subject_ref"], i["action"], i["stage"]) for i in items] == [
        (world["block"], "PO-1", "block", "create"),
        (world["warn"], "PO-1", "warn", "create"),
        (world["warn"], "PO-4", "warn", "create"),
    ]
    first = items[0]
    assert first["person"]["psn_no"] == world["person"].psn_no
    assert first["person"]["name_masked"] != world["person"].name and "*" in first["person"]["name_masked"]
    assert first["institution"]["org_id"] == world["shops"][1].org_id
    assert first["evidence"]["total_quantity"] == 3
    text = json.dumps(items, ensure_ascii=False)
    assert world["person"].name not in text and world["person"].id_number not in text

    by_rule = yb.admin("GET", f"/supervision-alerts?rule_id={world['warn']}").get_json()["items"]
    assert [i["subject_ref"] for i in by_rule] == ["PO-1", "PO-4"]
    org = world["shops"][1].org_id
    assert len(yb.admin("GET", f"/supervision-alerts?institution={org}").get_json()["items"]) == 3
    assert (
        yb.admin("GET", f"/supervision-alerts?institution={world['shops'][0].org_id}").get_json()["items"]
        == []
    )
    since = (NOW + timedelta(hours=3)).isoformat().replace("+00:00", "Z")
    recent = yb.admin("GET", "/supervision-alerts", query_string={"since": since}).get_json()["items"]
    assert [i["subject_ref"] for i in recent] == ["PO-4"]

    page = yb.admin("GET", "/supervision-alerts?limit=2").get_json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = yb.admin("GET", f"/supervision-alerts?limit=2&cursor={page['next_cursor']}").get_json()
    assert [i["subject_ref"] for i in rest["items"]] == ["PO-4"] and rest["next_cursor"] is None


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=201", "cursor=0", "cursor=x", "since=yesterday", "since=2026-03-01T00:00:00"],
)
def test_bad_alert_queries(yb, query):
    problem(yb.admin("GET", f"/supervision-alerts?{query}"), 422, "VALIDATION_FAILED")


def test_a_person_sees_the_alerts_about_them_only(yb, world):
    mine = yb.as_user(world["person"], "GET", "/supervision/alerts/me").get_json()["items"]
    assert [(i["kind"], i["action"], i["stage"]) for i in mine] == [  # newest first
        ("repeat_purchase", "warn", "create"),
        ("quantity_limit", "block", "create"),
    ]
    assert mine[0]["institution"] == {"org_id": world["shops"][1].org_id, "name": "大理药房二"}
    assert mine[0]["evidence"] == {
        "drug_code": "XA01",
        "window_days": 30,
        "max_institutions": 1,
        "institutions": 2,
    }
    assert mine[0]["created_at"].startswith("2026-03-01T04:00:00")
    assert "person" not in mine[0] and "subject_ref" not in mine[0]
    theirs = yb.as_user(world["other"], "GET", "/supervision/alerts/me?limit=1").get_json()
    assert len(theirs["items"]) == 1 and theirs["next_cursor"] is None
    page = yb.as_user(world["person"], "GET", "/supervision/alerts/me?limit=1").get_json()
    nxt = yb.as_user(world["person"], "GET", f"/supervision/alerts/me?limit=1&cursor={page['next_cursor']}")
    assert [i["kind"] for i in nxt.get_json()["items"]] == ["quantity_limit"]


def test_my_alerts_need_a_user(client, yb):
    problem(client.get("/api/v1/supervision/alerts/me"), 401, "AUTHENTICATION_REQUIRED")
    r = client.get(
        "/api/v1/supervision/alerts/me", headers={"Authorization": "Bearer test-admin-token-0123456789"}
    )
    problem(r, 401, "TOKEN_INVALID")


def test_daily_summary_per_rule(runner, world):
    out = runner.invoke(args=["supervision", "summary", "--day", "2026-03-01"])
    assert out.exit_code == 0, out.output
    body = json.loads(out.output)
    by_rule = {r["rule_id"]: r for r in body["rules"]}
    assert by_rule[world["block"]]["blocked"] == 1 and by_rule[world["block"]]["warned"] == 0
    assert by_rule[world["warn"]] | {} == {
        **by_rule[world["warn"]],
        "alerts": 2,
        "warned": 2,
        "blocked": 0,
        "by_stage": {"create": 2, "pay": 0, "verify": 0},
        "persons": 2,
        "institutions": 1,
    }
    quiet = json.loads(runner.invoke(args=["supervision", "summary", "--day", "2026-02-27"]).output)
    assert all(r["alerts"] == 0 for r in quiet["rules"]) and len(quiet["rules"]) == 2
