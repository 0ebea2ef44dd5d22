"""The SDK against the real service under gunicorn: activation, a code, a scan, an order paid and
refunded, usage and entries, a refresh, a webhook verified with the SDK."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests import servers
from tests.support import ADMIN_TOKEN, TEST_SECRET, make_id_number
from yibao_client import AdminClient, InstitutionClient, UserClient, errors, webhooks

pytestmark = pytest.mark.slow


@pytest.fixture
def service(app, tmp_path):
    settings = {
        "DATABASE_URL": app.config["DATABASE_URL"],
        "REDIS_URL": app.config["REDIS_URL"],
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "SECRET_KEY": TEST_SECRET,
        "YIBAO_SANDBOX_IDENTITY": "1",
    }
    with servers.gunicorn(settings, workers=2, log_dir=tmp_path) as url:
        yield url


def test_counter_sale_end_to_end(yb, service):
    person = yb.person(balance=50_000, region="532900", activate=False)
    pharmacy = yb.institution(kind="pharmacy", region="532900")

    saved = []
    app = UserClient(service, on_tokens=saved.append, language="en")
    proof = app.sandbox_proof(person.id_number, person.name)
    activation = app.activate(person.id_number, person.name, proof, device_id="sdk-e2e-phone")
    assert activation.status == 201 and app.psn_no == person.psn_no and saved
    assert app.account()["balance_fen"] == 50_000

    code = app.voucher(qr="svg")
    assert code["qr_content"].startswith("YB1:") and code["qr"].startswith("data:image/svg")

    pos = InstitutionClient(service, pharmacy.key_id, pharmacy.secret)
    assert pos.me()["org_id"] == pharmacy.org_id
    scan = pos.verify(code["qr_content"], "02121", "op-01", "王药师", "pos-3", "biz-0001")
    assert scan["person"]["psn_no"] == person.psn_no
    with pytest.raises(errors.VoucherAlreadyUsed) as used:
        pos.verify(code["qr_content"], "02121", "op-01", "王药师", "pos-3", "biz-0002")
    assert used.value.status == 409 and used.value.request_id

    item = {
        "drug_code": "XA01",
        "drug_name": "布洛芬缓释胶囊",
        "otc": True,
        "quantity": 2,
        "unit_price_fen": 2590,
        "trace_codes": ["8" + "".join(secrets.choice("0123456789") for _ in range(19)) for _ in range(2)],
    }
    order = pos.create_order(ec_token=scan["ec_token"], merchant_order_no="SDK-E2E-1", items=[item])
    assert order.status == 201 and order["status"] == "created" and order["total_fen"] == 5180
    oid = order["pay_order_id"]

    paid = pos.pay(oid, idempotency_key=f"{oid}-pay")
    assert paid["status"] == "paid" and paid["account_pay_fen"] == 5180
    again = pos.pay(oid, idempotency_key=f"{oid}-pay")  # what a retry after a lost answer gets
    assert again.replayed and again["status"] == "paid"
    with pytest.raises(errors.OrderStateConflict):
        pos.pay(oid)  # a new key: paying twice is refused, not done twice

    got = pos.get_order(oid)
    assert got["status"] == "paid" and len(got["items"]) == 1
    assert app.get_order(oid)["pay_order_id"] == oid  # the payer reads it too

    refund = pos.refund(oid, 2590, reason="退一盒", trace_codes=[item["trace_codes"][0]])
    assert refund.status == 201 and refund["account_refund_fen"] == 2590
    with pytest.raises(errors.RefundExceedsPaid):
        pos.refund(oid, 10_000, reason="too much")
    assert pos.get_order(oid)["status"] == "partially_refunded"

    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
    assert "reconciled" in pos.statement(today)

    usage = list(app.iterate_usage(limit=1))  # one per page: the iterator follows next_cursor
    assert [u["result"] for u in usage] == ["refused", "accepted"]
    assert app.account()["balance_fen"] == 50_000 - 5180 + 2590
    assert len(list(app.iterate_entries(limit=1))) >= 2

    # An access token the server refuses is replaced through the refresh token, once.
    app.access_token = "not-a-token"
    old_refresh = app.refresh_token
    assert app.account()["psn_no"] == person.psn_no
    assert app.refresh_token != old_refresh and saved[-1].refresh_token == app.refresh_token

    with pytest.raises(errors.InstitutionAuthFailed):
        InstitutionClient(service, pharmacy.key_id, "wrong-secret").me()
    with pytest.raises(errors.ValidationFailed) as bad:
        pos.create_order(ec_token="ec_x", merchant_order_no="SDK-E2E-2", items=[{"drug_code": "XA01"}])
    assert "items" in bad.value.errors


def test_admin_client_and_a_webhook_verified_by_the_sdk(yb, runner, service):
    ops = AdminClient(service, ADMIN_TOKEN)
    id_number = make_id_number()
    holder = ops.create_person(
        name="张三",
        id_number=id_number,
        insurance_type="employee",
        insured_region="532900",
        personal_account_balance_fen=10_000,
    )
    assert ops.get_person(holder["psn_no"])["insurance_type"] == "employee"
    inst = ops.create_institution(
        name="网上药店", kind="online_pharmacy", region="532900", services=["online_otc"]
    )
    assert any(i["org_id"] == inst["org_id"] for i in ops.institutions(limit=1))
    with pytest.raises(errors.Conflict):
        ops.create_person(
            name="张三", id_number=id_number, insurance_type="employee", insured_region="532900"
        )

    received: list[tuple[dict, bytes]] = []

    class Hook(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(({k: v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, args=(0.05,), daemon=True).start()
    try:
        wh = ops.set_webhook(inst["org_id"], f"http://127.0.0.1:{hook.server_address[1]}/hooks")
        proof = UserClient(service).sandbox_proof(id_number, "张三")
        user = UserClient(service)
        user.activate(id_number, "张三", proof, device_id="sdk-e2e-2")
        grant = user.pay_authorization("online_otc")
        pos = InstitutionClient(service, inst["key_id"], inst["secret"])
        item = {
            "drug_code": "XA01",
            "drug_name": "布洛芬",
            "otc": True,
            "quantity": 1,
            "unit_price_fen": 1000,
        }
        order = pos.create_order(pay_auth_no=grant["pay_auth_no"], merchant_order_no="SDK-WH-1", items=[item])
        pos.pay(order["pay_order_id"])
        result = runner.invoke(args=["webhooks", "run", "--once"])
        assert result.exit_code == 0, result.output
    finally:
        hook.shutdown()
        hook.server_close()
    assert received, "no webhook delivered"
    headers, body = received[0]
    assert webhooks.verify(wh["secret"], headers, body)
    assert not webhooks.verify(wh["secret"], headers, body + b" ")
    assert json.loads(body)["type"] == "payment.paid"
