"""Schemas of the fund statements (the 3201 totals) and the fund reconciliation (fund_statements.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from yibao.api import Schema

from .schemas import COUNT, SIGNED_FEN, _fen

MAX_PERIOD_DAYS = 366
_DATE = validate.Range(min=dt.date(2000, 1, 1), max=dt.date(9999, 12, 30))
REGION = r"^[0-9]{6}$"


class PeriodQuery(Schema):
    from_ = fields.Date(
        required=True, data_key="from", validate=_DATE, metadata={"description": "First Beijing date."}
    )
    to = fields.Date(required=True, validate=_DATE, metadata={"description": "Last Beijing date (included)."})

    @ma.validates_schema
    def _order(self, data: dict[str, Any], **_: Any) -> None:
        if data["to"] < data["from_"]:
            raise ma.ValidationError("Must not be before from.", field_name="to")
        if (data["to"] - data["from_"]).days >= MAX_PERIOD_DAYS:
            raise ma.ValidationError(f"A period is at most {MAX_PERIOD_DAYS} days.", field_name="to")


def _amounts(doc: str, count: bool) -> type[Schema]:
    attrs: dict[str, Any] = {
        "total_fen": _fen(metadata={"description": "medfee_sumamt: the bills"}),
        "hifp_pay_fen": _fen(metadata={"description": "hifp_pay: pooled fund"}),
        "hifmi_pay_fen": _fen(metadata={"description": "hifmi_pay: serious-illness insurance"}),
        "maf_pay_fen": _fen(metadata={"description": "maf_pay: medical assistance"}),
        "fund_pay_fen": _fen(metadata={"description": "fund_pay_sumamt: the three funds"}),
        "account_pay_fen": _fen(metadata={"description": "acct_pay: the person's own account"}),
        "mutual_aid_pay_fen": _fen(metadata={"description": "acct_mulaid_pay: family mutual aid"}),
        "cash_pay_fen": _fen(metadata={"description": "psn_cash_pay: cash"}),
    }
    if count:
        attrs = {"count": fields.Integer(required=True, validate=COUNT), **attrs}
    else:
        attrs = {k: fields.Integer(required=True, validate=SIGNED_FEN) for k in attrs}
    return type(doc, (Schema,), attrs)


FundAmountsOut = _amounts("FundAmountsOut", count=True)
FundNetOut = _amounts("FundNetOut", count=False)


class FundTotalsRowOut(Schema):
    insurance_type = fields.String(required=True, validate=validate.OneOf(["employee", "resident"]))
    policy_region = fields.String(
        required=True, metadata={"pattern": REGION, "description": "The policy (pooling) region applied."}
    )
    settlements = fields.Nested(FundAmountsOut, required=True, metadata={"description": "Paid in the period"})
    refunds = fields.Nested(FundAmountsOut, required=True, metadata={"description": "Refunded in it"})
    net = fields.Nested(FundNetOut, required=True, metadata={"description": "settlements - refunds"})


class FundTotalsSumOut(Schema):
    settlements = fields.Nested(FundAmountsOut, required=True)
    refunds = fields.Nested(FundAmountsOut, required=True)
    net = fields.Nested(FundNetOut, required=True)


class _Period(Schema):
    from_ = fields.String(required=True, data_key="from", attribute="from", metadata={"format": "date"})
    to = fields.String(required=True, metadata={"format": "date"})
    timezone = fields.String(required=True, validate=validate.OneOf(["Asia/Shanghai"]))


class FundStatementOut(_Period):
    org_id = fields.String(required=True)
    rows = fields.List(
        fields.Nested(FundTotalsRowOut),
        required=True,
        metadata={"description": "One per insurance type and policy region, in that order."},
    )
    total = fields.Nested(FundTotalsSumOut, required=True)


class FundAccountCheckOut(Schema):
    fund = fields.String(required=True, validate=validate.OneOf(["hifp", "hifmi", "maf"]))
    region = fields.String(required=True, metadata={"pattern": REGION})
    account = fields.String(required=True, metadata={"description": "The ledger account, `fund:region`."})
    paid_fen = _fen(metadata={"description": "What the period's settlements paid from this fund."})
    refunded_fen = _fen(metadata={"description": "What the period's refunds gave back to it."})
    net_fen = fields.Integer(required=True, validate=SIGNED_FEN)
    ledger_fen = fields.Integer(
        required=True, validate=SIGNED_FEN, metadata={"description": "Paid out net, from its entries."}
    )
    reconciled = fields.Boolean(required=True, metadata={"description": "ledger_fen == net_fen"})


class FundReconciliationOut(_Period):
    funds = fields.List(fields.Nested(FundAccountCheckOut), required=True)
    by_insurance_type = fields.List(fields.Nested(FundTotalsRowOut), required=True)
    reconciled = fields.Boolean(required=True)
