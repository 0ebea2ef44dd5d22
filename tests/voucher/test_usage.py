"""Usage audit: own history, pagination, family reads, rows where a relative showed the code."""

from __future__ import annotations

import pytest

from tests.support import problem
from voucher.models import UsageRecord

from .support import count_rows


def _usage(yb, p, query=""):
    resp = yb.as_user(p, "GET", "/vouchers/usage" + (f"?{query}" if query else ""))
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def test_person_sees_own_accepted_and_refused_scans(yb, vd):
    p, other = yb.person(region="532900"), yb.person()
    home, away = yb.institution(region="532900"), yb.institution(region="110101", name="北京药房")
    assert vd.scan(home, vd.issue(p)["qr_content"], "02121").status_code == 200
    problem(vd.scan(away, vd.issue(p)["qr_content"], "01302"), 403, "REGION_NOT_COVERED")
    vd.scan(home, vd.issue(other)["qr_content"])
    items = _usage(yb, p)["items"]
    assert [(i["result"], i["code"], i["business_type"]) for i in items] == [
        ("refused", "REGION_NOT_COVERED", "01302"),
        ("accepted", None, "02121"),
    ]
    assert items[0]["institution"] == {"org_id": away.org_id, "name": "北京药房"}
    assert items[1]["operator_id"] == "op-001" and items[1]["device_id"] == "scanner-7"
    assert items[1]["acted_by"] is None and items[1]["at"]
    assert "operator_name" not in items[1]


def test_pagination_with_cursor(yb, vd):
    p, inst = yb.person(), yb.institution()
    for _ in range(5):
        vd.scan(inst, vd.issue(p)["qr_content"])
    page1 = _usage(yb, p, "limit=2")
    page2 = _usage(yb, p, f"limit=2&cursor={page1['next_cursor']}")
    page3 = _usage(yb, p, f"limit=2&cursor={page2['next_cursor']}")
    assert len(page1["items"]) == len(page2["items"]) == 2 and len(page3["items"]) == 1
    assert page3["next_cursor"] is None
    outs = [i["out_biz_no"] for pg in (page1, page2, page3) for i in pg["items"]]
    assert len(set(outs)) == 5 and outs == sorted(outs, key=lambda s: -int(s.split("-")[1]))


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=x", "cursor=@@@", "cursor=eyJpZCI6LTF9"])
def test_bad_usage_queries(yb, query):
    p = yb.person()
    resp = yb.as_user(p, "GET", f"/vouchers/usage?{query}")
    assert resp.status_code == 422
    assert resp.get_json()["code"] in ("VALIDATION_FAILED", "USAGE_CURSOR_INVALID")


def test_unidentified_attempts_are_audited_but_shown_to_nobody(app, yb, vd):
    p, inst = yb.person(), yb.institution()
    vd.scan(inst, "not a voucher")
    assert count_rows(app, UsageRecord) == 1
    assert _usage(yb, p)["items"] == []


def test_other_persons_usage_is_not_permitted(yb, vd):
    a, b = yb.person(), yb.person()
    problem(yb.as_user(a, "GET", f"/vouchers/usage?psn_no={b.psn_no}"), 403, "NOT_PERMITTED")


def test_own_psn_no_is_allowed(yb):
    p = yb.person()
    assert _usage(yb, p, f"psn_no={p.psn_no}")["items"] == []
