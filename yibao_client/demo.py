"""`make demo`: the four journeys of yibao played with the SDK against a running `make run` service.

    python -m yibao_client.demo [--base-url URL] [--credentials FILE] [--lang en|zh] [--no-qr]

The base URL comes from YB (else http://127.0.0.1:8000), the operator token from ADMIN_TOKEN (else the
`admin_token` that `make run` writes, in development only, into instance/demo-credentials.json), the
institutions from that file (YIBAO_INSTANCE_DIR moves it; missing institutions are registered afresh).
Every run registers its own new persons, so it can be run again and again. The transcript is in Chinese
when LC_ALL / LC_MESSAGES / LANG start with "zh", else in English. Exit status 0 when every answer was the
expected one, 1 at the first unexpected answer (printed), 2 when the service or the operator token is
missing. Standard library and the SDK only; the code is drawn as a QR when the `qrcode` package is installed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import AdminClient, InstitutionClient, UserClient, errors

# (en, zh) per transcript line; {} fields are filled in.
TEXT = {
    "title": ("yibao demo against {base}", "yibao 演示，服务地址 {base}"),
    "a": ("(a) A pharmacy scan and counter sale", "(a) 药店扫码与柜台购药"),
    "b": ("(b) An online OTC order with a refund", "(b) 网上购买非处方药并退款"),
    "c": ("(c) A parent shows a child's code at a hospital", "(c) 家长在医院出示孩子的医保码"),
    "d": ("(d) A son pays for his mother through family mutual aid", "(d) 儿子通过家庭共济为母亲付款"),
    "registered": ("operator registers {name} ({kind}), {psn}", "经办机构登记 {name}（{kind}），{psn}"),
    "activated": (
        "{name} activates the e-voucher on a phone (sandbox face check)",
        "{name} 在手机上激活医保码（沙箱人脸核验）",
    ),
    "balance": ("{name}'s personal account: {yuan} yuan", "{name} 的个人账户余额：{yuan} 元"),
    "code": ("{name} shows the code (valid {secs} s):", "{name} 出示医保码（{secs} 秒内有效）："),
    "code_for": (
        "{name} shows {member}'s code (valid {secs} s):",
        "{name} 出示 {member} 的医保码（{secs} 秒内有效）：",
    ),
    "scanned": (
        "{inst} scans it, business type {bt}: ec_token {ec} for {psn}",
        "{inst} 扫码，业务类型 {bt}：为 {psn} 取得 ec_token {ec}",
    ),
    "order": (
        "{inst} places {po}: total {total}, personal account {acct}, mutual aid {aid}, cash {cash} yuan",
        "{inst} 下单 {po}：合计 {total} 元，个人账户 {acct}，家庭共济 {aid}，现金 {cash}",
    ),
    "paid": ("paid: status {status}", "已支付：状态 {status}"),
    "authorized": (
        "{name} authorizes one online payment in the app: {pa}",
        "{name} 在 App 中授权一次网上支付：{pa}",
    ),
    "authorized_for": (
        "{name} authorizes a payment from {member}'s account: {pa}",
        "{name} 授权从 {member} 的账户支付：{pa}",
    ),
    "refunded": (
        "refund {amount} yuan ({acct} back to the personal account): order {status}",
        "退款 {amount} 元（{acct} 退回个人账户）：订单 {status}",
    ),
    "guardian": (
        "{name} binds {child} as guardian (guardian proof): binding {status}",
        "{name} 以监护人身份绑定 {child}（监护证明）：绑定 {status}",
    ),
    "usage": (
        "{name} reads who used {child}'s code: {bt} {result}, presented by {actor}",
        "{name} 查看 {child} 的用码记录：{bt} {result}，出示人 {actor}",
    ),
    "filed": (
        "{name} files {member} for mutual aid: filing {status}",
        "{name} 为 {member} 备案家庭共济：备案 {status}",
    ),
    "approved": ("{member} approves on her own phone: {status}", "{member} 在自己的手机上同意：{status}"),
    "bound": (
        "{name} binds {member}, she approves: binding {status}",
        "{name} 绑定 {member}，她同意：绑定 {status}",
    ),
    "ok": ("All four journeys ran as expected.", "四个场景全部按预期完成。"),
    "unexpected": ("UNEXPECTED: {what}", "意外结果：{what}"),
    "no_service": (
        "yibao is not answering at {base} ({err}). Start it with `make run` in another terminal.",
        "{base} 上的 yibao 没有响应（{err}）。请先在另一个终端运行 `make run`。",
    ),
    "no_admin": (
        "No operator token: export ADMIN_TOKEN=... (the value make run printed).",
        "没有经办机构令牌：请 export ADMIN_TOKEN=...（make run 打印的值）。",
    ),
}
KIND = {"employee": ("employee insurance", "职工医保"), "resident": ("resident insurance", "居民医保")}
# Stand-ins for the demo institutions when the credentials file has none (YIBAO_SEED_DEMO=0).
INSTITUTIONS = {
    "pharmacy": {"name": "演示药房", "kind": "pharmacy", "region": "532900", "services": ["02121", "03131"]},
    "hospital": {"name": "演示医院", "kind": "hospital", "region": "532900", "services": ["01101", "01301"]},
    "online_pharmacy": {
        "name": "演示网上药店",
        "kind": "online_pharmacy",
        "region": "110000",
        "services": ["online_otc", "03131"],
    },
}


class Unexpected(Exception):
    """An answer the journey did not expect."""


def language(env: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """'zh' when the locale (LC_ALL, then LC_MESSAGES, then LANG) is Chinese, else 'en'."""
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        if env.get(var):
            return "zh" if env[var].lower().startswith("zh") else "en"
    return "en"


def id_number(region6: str, born: dt.date, male: bool) -> str:
    """A fresh, valid 18-digit resident ID number (GB 11643 check digit; sequence odd for men)."""
    seq = secrets.randbelow(500) * 2 + (1 if male else 0)
    first17 = f"{region6}{born:%Y%m%d}{seq:03d}"
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return first17 + "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights, strict=True)) % 11]


def _born(year: int) -> dt.date:
    return dt.date(year, 1, 1) + dt.timedelta(days=secrets.randbelow(360))


def _trace_code() -> str:
    return "8" + "".join(secrets.choice("0123456789") for _ in range(19))


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


class Demo:
    def __init__(
        self,
        base: str,
        admin_token: str,
        institutions: dict[str, dict[str, Any]],
        *,
        lang: str = "en",
        qr: bool = True,
        out: Callable[[str], None] = print,
    ) -> None:
        self.base, self.lang, self.qr, self.out = base, lang, qr, out
        self.ops = AdminClient(base, admin_token, language="zh-CN" if lang == "zh" else "en")
        self.creds = institutions
        self.tag = secrets.token_hex(4)  # merchant order numbers of this run

    # ------------------------------------------------------------ helpers

    def say(self, key: str, **fields: Any) -> None:
        en, zh = TEXT[key]
        self.out(
            ("  " if key not in {"title", "a", "b", "c", "d", "ok"} else "")
            + (zh if self.lang == "zh" else en).format(**fields)
        )

    def expect(self, ok: bool, what: str) -> None:
        if not ok:
            raise Unexpected(what)

    def institution(self, key: str) -> tuple[str, InstitutionClient]:
        creds = self.creds.get(key)
        if not creds:
            creds = {**INSTITUTIONS[key], **self.ops.create_institution(**INSTITUTIONS[key])}
            self.creds[key] = creds
        client = InstitutionClient(self.base, creds["key_id"], creds["secret"])
        return creds["name"], client

    def person(
        self, name: str, kind: str, region: str, born_year: int, male: bool, balance: int | None
    ) -> dict:
        number = id_number(
            region[:2] + ("0105" if region.startswith("11") else "2901"), _born(born_year), male
        )
        made = self.ops.create_person(
            name=name,
            id_number=number,
            insurance_type=kind,
            insured_region=region,
            personal_account_balance_fen=balance,
        )
        label = KIND[kind][1 if self.lang == "zh" else 0]
        self.say("registered", name=name, kind=label, psn=made["psn_no"])
        return {"name": name, "id_number": number, "psn_no": made["psn_no"]}

    def phone(self, who: dict) -> UserClient:
        app = UserClient(self.base, language="zh-CN" if self.lang == "zh" else "en")
        proof = app.sandbox_proof(who["id_number"], who["name"])
        app.activate(who["id_number"], who["name"], proof, device_id=f"demo-{self.tag}-{who['psn_no'][-6:]}")
        self.expect(app.psn_no == who["psn_no"], "activation answered another person")
        self.say("activated", name=who["name"])
        return app

    def show_code(self, code: dict) -> None:
        content = code["qr_content"]
        if self.qr:
            try:
                import qrcode  # optional: the repository's venv has it
            except ImportError:
                qrcode = None
            if qrcode is not None:
                matrix = qrcode.QRCode(border=1, error_correction=qrcode.constants.ERROR_CORRECT_L)
                matrix.add_data(content)
                from io import StringIO

                buf = StringIO()
                matrix.print_ascii(out=buf, invert=True)
                for line in buf.getvalue().splitlines():
                    self.out("    " + line)
        self.out(f"    {content[:48]}…")

    def order_line(self, inst: str, order: dict) -> None:
        self.expect(
            order["account_pay_fen"] + order["mutual_aid_pay_fen"] + order["cash_pay_fen"]
            == order["total_fen"],
            f"the split does not add up: {order}",
        )
        self.say(
            "order",
            inst=inst,
            po=order["pay_order_id"],
            total=yuan(order["total_fen"]),
            acct=yuan(order["account_pay_fen"]),
            aid=yuan(order["mutual_aid_pay_fen"]),
            cash=yuan(order["cash_pay_fen"]),
        )

    @staticmethod
    def item(price: int, quantity: int = 1, trace: bool = True) -> dict:
        return {
            "drug_code": "XA01",
            "drug_name": "布洛芬缓释胶囊",
            "otc": True,
            "quantity": quantity,
            "unit_price_fen": price,
            "trace_codes": [_trace_code() for _ in range(quantity)] if trace else [],
        }

    # ------------------------------------------------------------ the journeys

    def pharmacy_counter_sale(self) -> None:
        self.say("a")
        inst, pos = self.institution("pharmacy")
        zhang = self.person("周建华", "employee", "532900", 1980, True, 50_000)
        app = self.phone(zhang)
        self.say("balance", name=zhang["name"], yuan=yuan(app.account()["balance_fen"]))
        code = app.voucher()
        self.say("code", name=zhang["name"], secs=code["expires_in"])
        self.show_code(code)
        scan = pos.verify(code["qr_content"], "02121", "op-01", "王药师", "pos-1", f"demo-{self.tag}-a")
        self.expect(scan["person"]["psn_no"] == zhang["psn_no"], "the scan names another person")
        self.say("scanned", inst=inst, bt="02121", ec=scan["ec_token"][:12] + "…", psn=zhang["psn_no"])
        order = pos.create_order(
            ec_token=scan["ec_token"], merchant_order_no=f"DEMO-{self.tag}-A", items=[self.item(2590, 2)]
        )
        self.expect(order["status"] == "created" and order["total_fen"] == 5180, f"order: {dict(order)}")
        self.order_line(inst, order)
        paid = pos.pay(order["pay_order_id"])
        self.expect(paid["status"] == "paid", f"pay: {dict(paid)}")
        self.say("paid", status=paid["status"])
        after = app.account()["balance_fen"]
        self.expect(after == 50_000 - paid["account_pay_fen"], f"balance after the sale: {after}")
        self.say("balance", name=zhang["name"], yuan=yuan(after))

    def online_order_with_refund(self) -> None:
        self.say("b")
        inst, shop = self.institution("online_pharmacy")
        li = self.person("林晓燕", "employee", "110000", 1990, False, 10_000)
        app = self.phone(li)
        grant = app.pay_authorization("online_otc")
        self.say("authorized", name=li["name"], pa=grant["pay_auth_no"])
        item = self.item(2590)
        order = shop.create_order(
            pay_auth_no=grant["pay_auth_no"],
            merchant_order_no=f"DEMO-{self.tag}-B",
            items=[item],
            delivery_fee_fen=600,
        )
        self.expect(order["total_fen"] == 3190 and order["cash_pay_fen"] >= 600, f"order: {dict(order)}")
        self.order_line(inst, order)
        paid = shop.pay(order["pay_order_id"])
        self.expect(paid["status"] == "paid", f"pay: {dict(paid)}")
        self.say("paid", status=paid["status"])
        refund = shop.refund(order["pay_order_id"], 2590, reason="顾客退货", trace_codes=item["trace_codes"])
        status = shop.get_order(order["pay_order_id"])["status"]
        self.expect(
            refund["amount_fen"] == 2590 and status in {"refunded", "partially_refunded"},
            f"refund: {dict(refund)}",
        )
        self.say("refunded", amount=yuan(2590), acct=yuan(refund["account_refund_fen"]), status=status)
        after = app.account()["balance_fen"]
        self.expect(
            after == 10_000 - paid["account_pay_fen"] + refund["account_refund_fen"], f"balance: {after}"
        )
        self.say("balance", name=li["name"], yuan=yuan(after))

    def parent_at_hospital(self) -> None:
        self.say("c")
        inst, scanner = self.institution("hospital")
        father = self.person("李建国", "employee", "532900", 1985, True, 20_000)
        child = self.person("李小满", "resident", "532900", 2019, False, None)
        app = self.phone(father)
        proof = app.sandbox_proof(father["id_number"], father["name"], guardian_of=child["id_number"])
        binding = app.bind(child["id_number"], child["name"], "child", guardian_proof=proof)
        self.expect(
            binding["status"] == "active" and binding["basis"] == "guardian", f"binding: {dict(binding)}"
        )
        self.say("guardian", name=father["name"], child=child["name"], status=binding["status"])
        code = app.voucher(on_behalf_of=child["psn_no"])
        self.say("code_for", name=father["name"], member=child["name"], secs=code["expires_in"])
        self.show_code(code)
        scan = scanner.verify(
            code["qr_content"], "01301", "op-7", "王护士", "scanner-3", f"demo-{self.tag}-c"
        )
        self.expect(scan["person"]["psn_no"] == child["psn_no"], "the scan names another person")
        self.say("scanned", inst=inst, bt="01301", ec=scan["ec_token"][:12] + "…", psn=child["psn_no"])
        usage = app.usage(child["psn_no"])["items"]
        self.expect(bool(usage) and usage[0]["acted_by"] == father["psn_no"], f"usage: {usage}")
        self.say(
            "usage",
            name=father["name"],
            child=child["name"],
            bt=usage[0]["business_type"],
            result=usage[0]["result"],
            actor=father["name"],
        )

    def mutual_aid(self) -> None:
        self.say("d")
        inst, shop = self.institution("online_pharmacy")
        mother = self.person("赵秀英", "employee", "110000", 1956, False, 300)
        son = self.person("孙磊", "employee", "110000", 1988, True, 10_000)
        her, him = self.phone(mother), self.phone(son)
        filing = him.file_mutual_aid(mother["psn_no"], "parent")
        self.expect(filing["status"] == "pending", f"filing: {dict(filing)}")
        self.say("filed", name=son["name"], member=mother["name"], status=filing["status"])
        approved = her.approve_mutual_aid(filing["filing_id"])
        self.expect(approved["status"] == "active", f"approval: {dict(approved)}")
        self.say("approved", member=mother["name"], status=approved["status"])
        binding = him.bind(mother["id_number"], mother["name"], "parent")
        bound = her.approve_binding(binding["binding_id"])
        self.expect(bound["status"] == "active", f"binding: {dict(bound)}")
        self.say("bound", name=son["name"], member=mother["name"], status=bound["status"])
        grant = him.pay_authorization("online_otc", on_behalf_of=mother["psn_no"])
        self.say("authorized_for", name=son["name"], member=mother["name"], pa=grant["pay_auth_no"])
        order = shop.create_order(
            pay_auth_no=grant["pay_auth_no"],
            merchant_order_no=f"DEMO-{self.tag}-D",
            items=[self.item(1000, trace=False)],
            delivery_fee_fen=500,
        )
        self.expect(
            order["total_fen"] == 1500
            and order["account_pay_fen"] == 300
            and order["mutual_aid_pay_fen"] == 700,
            f"the split between the two accounts: {dict(order)}",
        )
        self.order_line(inst, order)
        paid = shop.pay(order["pay_order_id"])
        self.expect(paid["status"] == "paid", f"pay: {dict(paid)}")
        self.say("paid", status=paid["status"])
        mine, hers = him.account()["balance_fen"], her.account()["balance_fen"]
        self.expect(hers == 0 and mine == 9300, f"balances after: mother {hers}, son {mine}")
        self.say("balance", name=mother["name"], yuan=yuan(hers))
        self.say("balance", name=son["name"], yuan=yuan(mine))

    def run(self) -> None:
        self.say("title", base=self.base)
        for journey in (
            self.pharmacy_counter_sale,
            self.online_order_with_refund,
            self.parent_at_hospital,
            self.mutual_aid,
        ):
            self.out("")
            journey()
        self.out("")
        self.say("ok")


def _credentials(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m yibao_client.demo", description=__doc__.split("\n")[0])
    instance = Path(os.environ.get("YIBAO_INSTANCE_DIR") or Path.cwd() / "instance")
    parser.add_argument("--base-url", default=os.environ.get("YB") or "http://127.0.0.1:8000")
    parser.add_argument("--credentials", type=Path, default=instance / "demo-credentials.json")
    parser.add_argument("--lang", choices=["en", "zh"], default=language())
    parser.add_argument("--no-qr", action="store_true", help="print the code's text only")
    args = parser.parse_args(argv)
    base = args.base_url.rstrip("/")
    saved = _credentials(args.credentials)
    demo_out = Demo.__new__(Demo)  # for the messages before the clients exist
    demo_out.lang, demo_out.out = args.lang, print
    try:
        with urllib.request.urlopen(base + "/readyz", timeout=5):  # noqa: S310 - the URL the user gave
            pass
    except urllib.error.HTTPError:
        pass  # an answer: the service is up (it may still say not ready; the journeys will tell)
    except (OSError, ValueError) as exc:
        demo_out.say("no_service", base=base, err=exc)
        return 2
    token = os.environ.get("ADMIN_TOKEN") or saved.get("admin_token")
    if not token:
        demo_out.say("no_admin")
        return 2
    demo = Demo(base, token, dict(saved.get("institutions") or {}), lang=args.lang, qr=not args.no_qr)
    try:
        demo.run()
    except (Unexpected, errors.YibaoError) as exc:
        what = str(exc) if isinstance(exc, Unexpected) else f"{exc} (request_id {exc.request_id})"
        demo.say("unexpected", what=what)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
