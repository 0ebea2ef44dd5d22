"""Booleans on the wire: JSON true or false in bodies, the text "true" or "false" in query strings.

marshmallow's Boolean takes 1, "1", "yes", "on" and "True"; `truthy={True}` still lets 1 and 0 through
(1 == True in a set). Each loose value is a clear 422 naming the field, with nothing written.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.payments.support import Pay, item
from tests.support import make_id_number, make_name, problem

LOOSE = [1, 0, "true", "false", "1", "0", "yes", "on", "True", 1.0, None]


def count(app, table: str) -> int:
    from yibao.db import db

    with app.app_context(), db.uow(readonly=True) as uow:
        return uow.session.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar()  # noqa: S608


def person_body(**over):
    body = {"name": make_name(), "id_number": make_id_number(), "insurance_type": "employee"}
    return {**body, "insured_region": "532900", **over}


@pytest.mark.parametrize("value", LOOSE, ids=repr)
def test_retired_at_creation_is_true_or_false(app, yb, value):
    before = count(app, "persons")
    err = problem(yb.admin("POST", "/persons", person_body(retired=value)), 422, "VALIDATION_FAILED")
    assert list(err["errors"]) == ["retired"]
    assert count(app, "persons") == before


def test_retired_true_and_false_are_taken(yb):
    for value in (True, False):
        psn_no = yb.admin("POST", "/persons", person_body(retired=value)).get_json()["psn_no"]
        assert yb.admin("GET", f"/persons/{psn_no}").get_json()["retired"] is value


@pytest.mark.parametrize("value", LOOSE, ids=repr)
def test_retired_in_a_patch_is_true_or_false(yb, value):
    p = yb.person(activate=False)
    err = problem(yb.admin("PATCH", f"/persons/{p.psn_no}", {"retired": value}), 422, "VALIDATION_FAILED")
    assert list(err["errors"]) == ["retired"]
    assert yb.admin("GET", f"/persons/{p.psn_no}").get_json()["retired"] is False


@pytest.mark.parametrize("value", LOOSE, ids=repr)
def test_otc_and_account_only_are_true_or_false(app, yb, value):
    pay = Pay(yb)
    shop = yb.institution(kind="online_pharmacy", name="线上药房")
    payer = yb.person(balance=10_000)
    line = {**item(), "otc": value}
    err = problem(
        pay.create(shop, pay.order_body(pay.pay_auth(payer), items=[line])), 422, "VALIDATION_FAILED"
    )
    assert err["errors"] == {"items": {"0": {"otc": err["errors"]["items"]["0"]["otc"]}}}
    body = pay.order_body(pay.pay_auth(payer), account_only=value)
    if value is None:  # account_only is optional, but null is not one of its values
        body["account_only"] = None
    err = problem(pay.create(shop, body), 422, "VALIDATION_FAILED")
    assert list(err["errors"]) == ["account_only"]
    assert count(app, "payment_orders") == 0


@pytest.mark.parametrize("value", ["1", "0", "True", "FALSE", "yes", "on", "", "true ", "ｔｒｕｅ"])
def test_a_query_boolean_is_the_text_true_or_false(yb, value):
    err = problem(
        yb.admin("GET", "/supervision-rules", query_string={"enabled": value}), 422, "VALIDATION_FAILED"
    )
    assert list(err["errors"]) == ["enabled"]


def test_query_true_and_false_filter(yb):
    body = {
        "kind": "identity_velocity",
        "params": {"window_minutes": 30, "max_prefectures": 2},
        "action": "warn",
    }
    rule = yb.admin("POST", "/supervision-rules", body).get_json()["rule_id"]
    on = yb.admin("GET", "/supervision-rules", query_string={"enabled": "true"}).get_json()["items"]
    off = yb.admin("GET", "/supervision-rules", query_string={"enabled": "false"}).get_json()["items"]
    assert [r["rule_id"] for r in on] == [rule] and off == []


def test_the_query_boolean_says_what_it_takes_in_both_languages_and_in_the_document(yb, client):
    err = problem(
        yb.admin("GET", "/supervision-rules", query_string={"enabled": "1"}), 422, "VALIDATION_FAILED"
    )
    assert err["errors"] == {"enabled": ['Must be "true" or "false".']}
    zh = yb.admin(
        "GET", "/supervision-rules", query_string={"enabled": "1"}, headers={"Accept-Language": "zh-CN"}
    )
    assert problem(zh, 422, "VALIDATION_FAILED")["errors"] == {"enabled": ["必须为 “true” 或 “false”。"]}
    spec = client.get("/api/v1/openapi.json").get_json()
    params = spec["paths"]["/api/v1/admin/supervision-rules"]["get"]["parameters"]
    assert next(p for p in params if p["name"] == "enabled")["schema"]["type"] == "boolean"
