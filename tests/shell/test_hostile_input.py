"""Hostile input found in review: NUL characters, non-ASCII signature headers, out-of-range cursors
and dates. Each is a clear 4xx with nothing written or consumed, never a 500 (on SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import json
import time

import pytest
from sqlalchemy import text

from tests.payments.support import Pay, item
from tests.support import problem, sign_headers

NUL = "\x00"


def count(app, table: str) -> int:
    from yibao.db import db

    with app.app_context(), db.uow(readonly=True) as uow:
        return uow.session.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar()  # noqa: S608


def test_nul_in_body_fields_is_refused_before_anything_is_written(app, yb):
    before = count(app, "persons")
    body = {"name": "张" + NUL, "id_number": "x", "insurance_type": "employee", "insured_region": "532900"}
    err = problem(yb.admin("POST", "/persons", body), 422, "VALIDATION_FAILED")
    assert err["errors"]["name"] == ["Must not contain NUL characters."]
    assert count(app, "persons") == before
    p = yb.person()
    err = problem(yb.as_user(p, "POST", "/vouchers", {"on_behalf_of": "psn" + NUL}), 422, "VALIDATION_FAILED")
    assert "on_behalf_of" in err["errors"]
    nested = {"purpose": "online_otc", "on_behalf_of": None, NUL: 1}
    problem(yb.as_user(p, "POST", "/pay-authorizations", nested), 422, "VALIDATION_FAILED")


def test_nul_in_a_scan_does_not_consume_the_code(app, yb):
    p, inst = yb.person(region="532900"), yb.institution(region="532900")
    qr = yb.as_user(p, "POST", "/vouchers").get_json()["qr_content"]
    base = {"qr_content": qr, "business_type": "02121", "operator_id": "op-1", "device_id": "d-1"}
    bad = {**base, "operator_name": "王" + NUL, "out_biz_no": "b1"}
    err = problem(yb.as_institution(inst, "POST", "/verifications", bad), 422, "VALIDATION_FAILED")
    assert "operator_name" in err["errors"]
    assert count(app, "voucher_usage") == 0
    good = {**base, "operator_name": "王药师", "out_biz_no": "b2"}
    assert yb.as_institution(inst, "POST", "/verifications", good).status_code == 200


def test_nul_in_an_order_is_refused(app, yb):
    pay, shop = Pay(yb), yb.institution(kind="online_pharmacy")
    payer = yb.person(balance=1000)
    body = pay.order_body(pay.pay_auth(payer), items=[item(drug_name="布洛芬" + NUL)])
    problem(pay.create(shop, body), 422, "VALIDATION_FAILED")
    body = pay.order_body(pay.pay_auth(payer), merchant_order_no="MO" + NUL)
    problem(pay.create(shop, body), 422, "VALIDATION_FAILED")
    assert count(app, "payment_orders") == 0


def test_nul_in_query_and_path(yb):
    p = yb.person()
    problem(yb.as_user(p, "GET", "/vouchers/usage", query_string="psn_no=%00"), 422, "VALIDATION_FAILED")
    problem(yb.as_user(p, "GET", "/accounts/me", query_string="on_behalf_of=a%00"), 422, "VALIDATION_FAILED")
    problem(yb.as_user(p, "GET", "/family/bindings/fb_%00x"), 404, "NOT_FOUND")
    problem(yb.admin("GET", "/persons/psn_%00"), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    "header,value",
    [
        ("X-Yb-Timestamp", "\xb2"),  # "²": str.isdigit() says yes, int() says no
        ("X-Yb-Timestamp", "1e9"),
        ("X-Yb-Timestamp", "-5"),
        ("X-Yb-Signature", "\xe9" * 64),  # compare_digest refuses non-ASCII text
        ("X-Yb-Signature", "zz"),
        ("X-Yb-Key", "ak_" + NUL),
        ("X-Yb-Key", "ak_\xe9"),
        ("X-Yb-Nonce", "n\xe9"),
        ("X-Yb-Nonce", "n" * 129),
    ],
)
def test_hostile_signature_headers_fail_as_auth_failures(client, yb, header, value):
    inst = yb.institution()
    headers = sign_headers(inst.key_id, inst.secret, "GET", "/api/v1/institutions/me", b"")
    headers[header] = value
    problem(client.get("/api/v1/institutions/me", headers=headers), 401, "INSTITUTION_AUTH_FAILED")


@pytest.mark.parametrize(
    "shape",
    [
        lambda ts: ts.translate(str.maketrans("0123456789", "０１２３４５６７８９")),  # int() reads it
        lambda ts: f" {ts}",
        lambda ts: f"+{ts}",
        lambda ts: f"{ts[:3]}_{ts[3:]}",
        lambda ts: f"{ts}\n",
    ],
    ids=["full-width", "padded", "plus", "underscore", "newline"],
)
def test_a_timestamp_int_would_read_is_refused_even_when_signed(app, yb, redis_client, shape):
    """WSGI hands headers over as latin-1, so these cannot arrive by HTTP; the check itself still refuses
    them (ASCII digits only), signed over their very text, before any key lookup or nonce."""
    from yibao.auth import institutions
    from yibao.db import db
    from yibao.errors import AppError

    inst = yb.institution()
    path, now = "/api/v1/institutions/me", str(int(time.time()))

    def check(ts: str, nonce: str) -> object:
        sig = institutions.sign(inst.secret, "GET", path, "", ts, nonce, b"")
        with app.app_context(), db.uow(readonly=True) as uow:
            return institutions.authenticate(
                uow, redis_client, key_id=inst.key_id, timestamp=ts, nonce=nonce, signature=sig,
                method="GET", path=path, query="", body=b"",
            )  # fmt: skip

    with pytest.raises(AppError) as err:
        check(shape(now), "n-hostile-1")
    assert err.value.code == "INSTITUTION_AUTH_FAILED"
    assert err.value.extra["reason"] == "HEADERS_MISSING"
    assert redis_client.keys("yb:nonce:*") == []
    assert check(now, "n-ascii-1").org_id == inst.org_id  # the same call with the ASCII digits passes


def test_huge_cursors_are_refused(yb):
    p = yb.person(balance=100)
    huge = str(2**63)
    problem(
        yb.as_user(p, "GET", "/accounts/me/entries", query_string=f"cursor={huge}"), 422, "VALIDATION_FAILED"
    )
    problem(yb.admin("GET", f"/persons?cursor={huge}"), 422, "VALIDATION_FAILED")
    problem(yb.admin("GET", f"/institutions?cursor={huge}"), 422, "VALIDATION_FAILED")
    # persons and institutions have INTEGER ids: a cursor past 2^31 - 1 is refused before PostgreSQL
    problem(yb.admin("GET", f"/persons?cursor={2**31}"), 422, "VALIDATION_FAILED")
    problem(yb.admin("GET", f"/institutions?cursor={2**31}"), 422, "VALIDATION_FAILED")
    assert yb.admin("GET", f"/persons?cursor={2**31 - 1}").status_code == 200
    cursor = base64.urlsafe_b64encode(json.dumps({"id": 2**63}).encode()).decode().rstrip("=")
    r = yb.as_user(p, "GET", "/vouchers/usage", query_string=f"cursor={cursor}")
    assert 400 <= r.status_code < 500 and r.get_json()["code"] == "USAGE_CURSOR_INVALID"
    last = base64.urlsafe_b64encode(json.dumps({"id": 2**63 - 1}).encode()).decode().rstrip("=")
    assert yb.as_user(p, "GET", "/vouchers/usage", query_string=f"cursor={last}").status_code == 200


@pytest.mark.parametrize("day", ["0001-01-01", "1999-12-31", "9999-12-31"])
def test_statement_dates_out_of_range(yb, day):
    shop = yb.institution(kind="online_pharmacy")
    problem(yb.as_institution(shop, "GET", "/statements", query=f"date={day}"), 422, "VALIDATION_FAILED")


def test_failed_statements_do_not_carry_their_values(app):
    """Error texts end up in logs: the bound values (personal data) must not be in them."""
    from yibao.db import db

    marker = f"王药师-{time.time_ns()}"
    with app.app_context(), pytest.raises(Exception) as exc_info, db.engine.connect() as conn:
        conn.execute(text("SELECT * FROM no_such_table WHERE x = :v"), {"v": marker})
    assert "no_such_table" in str(exc_info.value) and marker not in str(exc_info.value)
