"""A scan burns the request's nonce and the code's single-use key in one Redis round trip
(yibao.api Blueprint.institution_claiming): a replayed request still answers 401 and writes nothing,
and an institution changed in another worker is seen before anything is consumed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import Yb, problem, sign_headers
from voucher.models import EcToken, UsageRecord, VoucherUse
from yibao import create_app

from .support import SCAN_FIELDS, VoucherDriver, count_rows


def scan_request(inst: Any, body: Any, nonce: str) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    h = sign_headers(inst.key_id, inst.secret, "POST", "/api/v1/verifications", raw, nonce=nonce)
    h["Content-Type"] = "application/json"
    return raw, h


def scan_body(qr_content: Any, business_type: str = "02121", out_biz_no: str = "biz-1") -> dict:
    return {"qr_content": qr_content, "business_type": business_type, **SCAN_FIELDS, "out_biz_no": out_biz_no}


@pytest.fixture
def other_worker(app_config: dict) -> Iterator[Any]:
    """A second app on the same database and Redis: another worker with its own cache."""
    other = create_app(app_config)
    yield other.test_client()
    other.extensions["yibao.db"]["engine"].dispose()


def test_replayed_scan_of_a_good_code_consumes_nothing(app, client, yb, vd):
    p, inst = yb.person(), yb.institution()
    first = vd.issue(p)["qr_content"]
    assert vd.scan(inst, first).status_code == 200  # the institution is cached now
    code = vd.issue(p)["qr_content"]
    raw, h = scan_request(inst, scan_body(first), nonce="nonce-A")
    problem(client.post("/api/v1/verifications", data=raw, headers=h), 409, "VOUCHER_ALREADY_USED")
    # the same nonce again, now with a good code: refused as a replay; the code stays unspent
    raw, h = scan_request(inst, scan_body(code, out_biz_no="biz-2"), nonce="nonce-A")
    body = problem(client.post("/api/v1/verifications", data=raw, headers=h), 401, "INSTITUTION_AUTH_FAILED")
    assert body["reason"] == "NONCE_REUSED"
    assert count_rows(app, UsageRecord) == 2 and count_rows(app, VoucherUse) == 1
    assert vd.scan(inst, code).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        # refused before single use: the nonce is burned before the audit row is written
        (scan_body("not-a-code"), 400, "VOUCHER_MALFORMED"),
        ({"qr_content": "x"}, 422, "VALIDATION_FAILED"),
    ],
    ids=["malformed-code", "invalid-body"],
)
def test_replayed_nonce_is_401_whatever_the_view_would_answer(app, client, yb, vd, body, status, code):
    inst = yb.institution()
    problem(vd.scan(inst, "warm-up"), 400, "VOUCHER_MALFORMED")  # the institution is cached now
    raw, h = scan_request(inst, body, nonce="nonce-B")
    problem(client.post("/api/v1/verifications", data=raw, headers=h), status, code)
    rows = count_rows(app, UsageRecord)
    again = problem(client.post("/api/v1/verifications", data=raw, headers=h), 401, "INSTITUTION_AUTH_FAILED")
    assert again["reason"] == "NONCE_REUSED"
    assert count_rows(app, UsageRecord) == rows


def test_accepted_scan_is_one_redis_round_trip_before_the_commit(app, yb, vd):
    p, inst = yb.person(), yb.institution()
    assert vd.scan(inst, vd.issue(p)["qr_content"]).status_code == 200
    code = vd.issue(p)["qr_content"]
    real = app.extensions["yibao.redis"]
    sent: list[str] = []

    class Counting:
        def __getattr__(self, name: str) -> Any:
            sent.append(name)
            return getattr(real, name)

    app.extensions["yibao.redis"] = Counting()
    try:
        assert vd.scan(inst, code).status_code == 200
    finally:
        app.extensions["yibao.redis"] = real
    # the claim script (institution version, nonce, code); after the commit, the scan notice to the
    # person's page (XADD + EXPIRE in one script): two commands in all, one before the commit
    assert sent == ["evalsha", "evalsha"]


def test_disabled_in_another_worker_refused_before_consuming(app, yb, vd, other_worker):
    p, inst = yb.person(), yb.institution()
    assert vd.scan(inst, vd.issue(p)["qr_content"]).status_code == 200  # cached in this worker
    code = vd.issue(p)["qr_content"]
    other = VoucherDriver(Yb(other_worker), app)
    assert other.yb.admin("PATCH", f"/institutions/{inst.org_id}", {"status": "disabled"}).status_code == 200
    rows = count_rows(app, UsageRecord)
    problem(vd.scan(inst, code), 403, "INSTITUTION_DISABLED")
    assert count_rows(app, UsageRecord) == rows and count_rows(app, VoucherUse) == 1
    other.yb.admin("PATCH", f"/institutions/{inst.org_id}", {"status": "active"})
    assert vd.scan(inst, code).status_code == 200  # never consumed


def test_designation_withdrawn_in_another_worker_is_seen_at_once(app, yb, vd, other_worker):
    p, inst = yb.person(), yb.institution()
    assert vd.scan(inst, vd.issue(p)["qr_content"], "02121").status_code == 200
    code = vd.issue(p)["qr_content"]
    admin = Yb(other_worker).admin
    assert admin("PATCH", f"/institutions/{inst.org_id}", {"services": ["03131"]}).status_code == 200
    problem(vd.scan(inst, code, "02121"), 403, "INSTITUTION_NOT_DESIGNATED")
    assert count_rows(app, VoucherUse) == 1 and count_rows(app, EcToken) == 1
    admin("PATCH", f"/institutions/{inst.org_id}", {"services": ["02121", "03131"]})
    assert vd.scan(inst, code, "02121").status_code == 200
