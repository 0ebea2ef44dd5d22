"""The service tier's driver: persons, an institution, orders, payments and refunds through the
payments service functions, each step in its own unit of work (no HTTP, no Flask test client)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from family_accounts import acting as family
from payments import accounts, grants, ledger, orders, refunds, settlement, statements
from payments.models import PaymentOrder, Refund
from tests.support import make_id_number, make_name
from yibao.db import db
from yibao.registry import services as registry

_people = itertools.count(1)
_merchant = itertools.count(1)


def line(price: int, quantity: int = 1, codes: Sequence[str] = (), otc: bool = True) -> orders.ItemIn:
    return orders.ItemIn(
        drug_code="XA01",
        drug_name="布洛芬缓释胶囊",
        otc=otc,
        quantity=quantity,
        unit_price_fen=price,
        trace_codes=tuple(codes),
    )


class Money:
    """Call inside an app context."""

    def __init__(self, monkeypatch: Any) -> None:
        self.monkeypatch = monkeypatch
        self.holders: dict[int, list[int]] = {}
        monkeypatch.setattr(family, "mutual_aid_holders", self._holders_of)
        with db.uow() as uow:
            inst, _ = registry.create_institution(
                uow, name="服务层药房", kind="online_pharmacy", region="532900", services=["online_otc"]
            )
            self.shop = inst.id
            uow.commit()

    def _holders_of(self, uow: Any, *, member_person_id: int, filed: bool = True) -> list[int]:
        # The stand-in answers for family_accounts whether or not the order query saw a filing.
        return self.holders.get(member_person_id, [])

    def person(self, balance: int = 0, insurance_type: str = "employee") -> int:
        n = next(_people)
        with db.uow() as uow:
            p = registry.create_person(
                uow,
                name=make_name(),
                id_number=make_id_number(birth=f"19{60 + n // 1000 % 40}0101", seq=n),
                insurance_type=insurance_type,
                insured_region="532900",
                personal_account_balance_fen=balance or None,
            )
            uow.commit()
            return p.id

    def balance(self, person_id: int) -> int:
        with db.uow(readonly=True) as uow:
            return accounts.account_of(uow, person_id).balance_fen

    def place(
        self,
        payer: int,
        items: Sequence[orders.ItemIn],
        *,
        delivery_fee_fen: int = 0,
        account_only: bool = False,
    ) -> PaymentOrder:
        with db.uow() as uow:
            grant = grants.create_pay_authorization(
                uow, actor_person_id=payer, purpose="online_otc", on_behalf_of=None
            )
            uow.commit()
        with db.uow() as uow:
            order = orders.create_order(
                uow,
                institution_id=self.shop,
                pay_auth_no=grant.grant_key,
                ec_token=None,
                merchant_order_no=f"SVC{next(_merchant):08d}",
                items=items,
                delivery_fee_fen=delivery_fee_fen,
                account_only=account_only,
            ).order
            uow.commit()
            return order

    def pay(self, order: PaymentOrder) -> PaymentOrder:
        with db.uow() as uow:
            paid = settlement.pay_order(uow, pay_order_id=order.pay_order_id, institution_id=self.shop).order
            uow.commit()
            return paid

    def refund(self, order: PaymentOrder, amount_fen: int | None = None, codes: Sequence[str] = ()) -> Refund:
        with db.uow() as uow:
            r = refunds.refund_order(
                uow,
                pay_order_id=order.pay_order_id,
                institution_id=self.shop,
                amount_fen=amount_fen,
                reason="退货",
                trace_codes=codes,
            )
            uow.commit()
            return r

    def account_id(self, person_id: int) -> int:
        with db.uow(readonly=True) as uow:
            acct = ledger.personal_account(uow, person_id)
            assert acct is not None
            return acct.id

    def reconciled(self) -> bool:
        with db.uow(readonly=True) as uow:
            return statements.reconcile(uow)["ok"]
