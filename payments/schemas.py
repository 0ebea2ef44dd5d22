"""Request and response schemas of the payments API: every answer is serialized through these.

Amounts are integer fen. Inputs have no upper bound in the schema: a total beyond 2^53 - 1 fen is
refused with its own code (AMOUNT_TOO_LARGE). Timestamps are ISO 8601 in UTC with a "Z" suffix.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from supervision.schemas import SupervisionFindingOut
from yibao.api import Schema
from yibao.db import MAX_ID
from yibao.errors import register_field_messages
from yibao.fields import StrictBoolean

from .grants import PURPOSES
from .money import MAX_FEN
from .orders import TRANSITIONS

_ONE_GRANT = "Send exactly one of pay_auth_no and ec_token."
register_field_messages({_ONE_GRANT: "pay_auth_no 与 ec_token 必须且只能提供一个。"})

# Identifiers the service issues (prefix + secrets.token_urlsafe).
PAY_ORDER_ID_PATTERN = r"^po_[A-Za-z0-9_-]{24}$"
REFUND_ID_PATTERN = r"^rf_[A-Za-z0-9_-]{24}$"
PAY_AUTH_NO_PATTERN = r"^pa_[A-Za-z0-9_-]{32}$"

FEN = validate.Range(min=0, max=MAX_FEN)  # an amount the service answers: 0..2^53-1
SIGNED_FEN = validate.Range(min=-MAX_FEN, max=MAX_FEN)
COUNT = validate.Range(min=0)
_NO_UPPER_BOUND = "Integer fen; a total beyond 2^53 - 1 fen is refused as AMOUNT_TOO_LARGE."


class UtcDateTime(fields.DateTime):
    """ISO 8601 in UTC with a "Z" suffix (2026-03-10T08:00:00.123456Z)."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        return value.isoformat().replace("+00:00", "Z")


def _fen(**kw: Any) -> fields.Integer:
    return fields.Integer(required=True, validate=FEN, **kw)


# ---------------------------------------------------------------- requests


class PayAuthorizationIn(Schema):
    purpose = fields.String(required=True, validate=validate.OneOf(PURPOSES))
    on_behalf_of = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=32),
        metadata={"description": "psn_no of the family member you pay for (family binding with `pay`)."},
    )


class ItemIn(Schema):
    drug_code = fields.String(required=True, validate=validate.Length(min=1, max=64))
    drug_name = fields.String(required=True, validate=validate.Length(min=1, max=128))
    otc = StrictBoolean(required=True)
    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=100_000))
    unit_price_fen = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=0), metadata={"description": _NO_UPPER_BOUND}
    )
    trace_codes = fields.List(
        fields.String(),
        load_default=list,
        validate=validate.Length(max=100_000),
        metadata={
            "description": "Drug traceability codes (20 digits or a GS1 element string), one per unit "
            "when given."
        },
    )


MED_TYPES = ("outpatient", "inpatient")
_HOSPITAL = "Hospital settlement (med_type given): ec_token only, no delivery fee, no account_only."
register_field_messages(
    {_HOSPITAL: "医院结算（提供 med_type）：只能用 ec_token，不能有配送费或 account_only。"}
)


class HospitalItemIn(Schema):
    """A line of a hospital bill (orders with med_type)."""

    item_code = fields.String(required=True, validate=validate.Length(min=1, max=64))
    item_name = fields.String(required=True, validate=validate.Length(min=1, max=128))
    category = fields.String(
        required=True,
        validate=validate.OneOf(("A", "B", "C")),
        metadata={
            "description": "A 甲类 (all in range), B 乙类 (class_b_self_pay_pct self-paid), C 丙类 (own pay)."
        },
    )
    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=100_000))
    unit_price_fen = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=0), metadata={"description": _NO_UPPER_BOUND}
    )
    trace_codes = fields.List(fields.String(), load_default=list, validate=validate.Length(max=100_000))


class OrderItems(fields.List):
    """v1 drug lines (ItemIn); with `med_type` in the body, hospital lines (HospitalItemIn)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(data, dict) and data.get("med_type") is not None:
            return _HOSPITAL_ITEMS.deserialize(value, attr, data, **kwargs)
        return super()._deserialize(value, attr, data, **kwargs)


_HOSPITAL_ITEMS = fields.List(fields.Nested(HospitalItemIn), validate=validate.Length(min=1, max=200))


class OrderIn(Schema):
    pay_auth_no = fields.String(load_default=None, validate=validate.Length(min=1, max=64))
    ec_token = fields.String(load_default=None, validate=validate.Length(min=1, max=40))
    merchant_order_no = fields.String(required=True, validate=validate.Length(min=1, max=64))
    items = OrderItems(
        fields.Nested(ItemIn),
        required=True,
        validate=validate.Length(min=1, max=200),
        metadata={
            "description": "Drug lines (ItemIn); for a hospital settlement (med_type given) the lines "
            "are {item_code, item_name, category: A|B|C, quantity, unit_price_fen, trace_codes?}."
        },
    )
    med_type = fields.String(
        load_default=None,
        validate=validate.OneOf(MED_TYPES),
        metadata={
            "description": "Hospital settlement (ec_token of business type 01301): the platform splits "
            "the bill between the funds and the person; see docs/hospital.md."
        },
    )
    delivery_fee_fen = fields.Integer(
        load_default=0, strict=True, validate=validate.Range(min=0), metadata={"description": _NO_UPPER_BOUND}
    )
    account_only = StrictBoolean(
        load_default=False,
        metadata={
            "description": "Refuse with INSUFFICIENT_BALANCE instead of letting cash cover a drug shortfall "
            "(delivery is always cash)."
        },
    )

    @ma.validates_schema
    def _one_grant(self, data: dict, **_: object) -> None:
        if (data.get("pay_auth_no") is None) == (data.get("ec_token") is None):
            raise ma.ValidationError(_ONE_GRANT, "pay_auth_no")
        if data.get("med_type") is not None and (
            data.get("pay_auth_no") is not None or data.get("delivery_fee_fen") or data.get("account_only")
        ):
            raise ma.ValidationError(_HOSPITAL, "med_type")


class RefundIn(Schema):
    amount_fen = fields.Integer(
        load_default=None,
        strict=True,
        validate=validate.Range(min=1),
        metadata={"description": "Omit to refund everything left."},
    )
    reason = fields.String(required=True, validate=validate.Length(min=1, max=256))
    trace_codes = fields.List(
        fields.String(),
        load_default=list,
        metadata={
            "description": "Codes of the returned boxes to release (all are released by a final refund)."
        },
    )


class AccountQuery(Schema):
    on_behalf_of = fields.String(load_default=None, validate=validate.Length(min=1, max=32))


class EntriesQuery(Schema):
    on_behalf_of = fields.String(load_default=None, validate=validate.Length(min=1, max=32))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_ID))


class StatementQuery(Schema):
    date = fields.Date(
        required=True, validate=validate.Range(min=dt.date(2000, 1, 1), max=dt.date(9999, 12, 30))
    )


class ContributionIn(Schema):
    psn_no = fields.String(required=True, validate=validate.Length(min=1, max=32))
    year = fields.Integer(required=True, strict=True, validate=validate.Range(min=1990, max=2200))
    amount_fen = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1), metadata={"description": _NO_UPPER_BOUND}
    )


class WebhookIn(Schema):
    url = fields.Url(
        load_default=None,
        schemes={"http", "https"},
        require_tld=False,
        metadata={"description": "Omit to use the institution's registered webhook_url."},
    )


# ---------------------------------------------------------------- responses


class PayAuthorizationOut(Schema):
    pay_auth_no = fields.String(required=True, validate=validate.Regexp(PAY_AUTH_NO_PATTERN))
    purpose = fields.String(required=True, validate=validate.OneOf(PURPOSES))
    expires_at = UtcDateTime(required=True)
    expires_in = fields.Integer(
        required=True, validate=validate.Range(min=0, max=300), metadata={"description": "Seconds."}
    )


class AccountOut(Schema):
    psn_no = fields.String(required=True)
    balance_fen = _fen()


class EntryOut(Schema):
    entry_id = fields.Integer(required=True, validate=validate.Range(min=1, max=MAX_ID))
    amount_fen = fields.Integer(
        required=True, validate=SIGNED_FEN, metadata={"description": "Credit > 0, debit < 0."}
    )
    kind = fields.String(
        required=True, validate=validate.OneOf(["opening", "contribution", "payment", "refund"])
    )
    pay_order_id = fields.String(
        required=True, allow_none=True, validate=validate.Regexp(PAY_ORDER_ID_PATTERN)
    )
    created_at = UtcDateTime(required=True)


class EntriesOut(Schema):
    items = fields.List(fields.Nested(EntryOut), required=True)
    next_cursor = fields.Integer(
        required=True,
        allow_none=True,
        validate=validate.Range(min=1, max=MAX_ID),
        metadata={"description": "Pass as `cursor` for the next page; null on the last page."},
    )


class OrderOut(Schema):
    pay_order_id = fields.String(required=True, validate=validate.Regexp(PAY_ORDER_ID_PATTERN))
    merchant_order_no = fields.String(required=True, validate=validate.Length(min=1, max=64))
    status = fields.String(required=True, validate=validate.OneOf(list(TRANSITIONS)))
    purpose = fields.String(required=True, validate=validate.OneOf(PURPOSES))
    account_only = fields.Boolean(required=True)
    total_fen = _fen()
    drug_fen = _fen()
    delivery_fee_fen = _fen()
    account_pay_fen = _fen(metadata={"description": "Quoted when placed, fixed when paid."})
    mutual_aid_pay_fen = _fen()
    cash_pay_fen = _fen()
    refunded_fen = _fen()
    created_at = UtcDateTime(required=True)
    paid_at = UtcDateTime(required=True, allow_none=True)
    # Hospital settlements only (med_type orders, issue 15): the split; provisional until paid.
    med_type = fields.String(validate=validate.OneOf(MED_TYPES))
    inscp_fen = fields.Integer(validate=FEN, metadata={"description": "In range (符合政策范围)."})
    preselfpay_fen = fields.Integer(
        validate=FEN, metadata={"description": "Class B self-paid part (先行自付)."}
    )
    ownpay_fen = fields.Integer(validate=FEN, metadata={"description": "Class C (全自费)."})
    deductible_fen = fields.Integer(validate=FEN)
    hifp_pay_fen = fields.Integer(validate=FEN, metadata={"description": "Pooled fund (统筹基金)."})
    hifmi_pay_fen = fields.Integer(validate=FEN, metadata={"description": "Serious illness (大病保险)."})
    maf_pay_fen = fields.Integer(validate=FEN, metadata={"description": "Medical assistance (医疗救助)."})
    fund_pay_fen = fields.Integer(validate=FEN)
    policy_version = fields.Integer(validate=validate.Range(min=1))


class CheckedOrderOut(OrderOut):
    """The answer of placing and of paying an order: the order and the supervision warnings."""

    warnings = fields.List(
        fields.Nested(SupervisionFindingOut),
        required=True,
        metadata={
            "description": "Fund-supervision warn rules this order breaks (allowed, recorded as alerts); "
            "empty when none. A block rule answers 422 SUPERVISION_BLOCKED with `violations` instead."
        },
    )


class OrderItemOut(Schema):
    line_no = fields.Integer(required=True, validate=validate.Range(min=1, max=200))
    drug_code = fields.String(required=True)
    drug_name = fields.String(required=True)
    otc = fields.Boolean(required=True)
    quantity = fields.Integer(required=True, validate=validate.Range(min=1, max=100_000))
    unit_price_fen = _fen()
    trace_codes = fields.List(fields.String(), required=True)


class RefundOut(Schema):
    refund_id = fields.String(required=True, validate=validate.Regexp(REFUND_ID_PATTERN))
    status = fields.String(required=True, validate=validate.OneOf(["succeeded"]))
    amount_fen = _fen()
    account_refund_fen = _fen(metadata={"description": "Back to insurance accounts (mutual aid included)."})
    mutual_aid_refund_fen = _fen()
    cash_refund_fen = _fen()
    released_trace_codes = fields.List(fields.String(), required=True)
    reason = fields.String(required=True, validate=validate.Length(min=1, max=256))
    created_at = UtcDateTime(required=True)
    # Hospital settlements only: what the funds got back.
    hifp_refund_fen = fields.Integer(validate=FEN)
    hifmi_refund_fen = fields.Integer(validate=FEN)
    maf_refund_fen = fields.Integer(validate=FEN)


class OrderDetailOut(OrderOut):
    acted_by = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "psn_no of the family member who acted for the payer, if any."},
    )
    items = fields.List(fields.Nested(OrderItemOut), required=True)
    refunds = fields.List(fields.Nested(RefundOut), required=True)


class StatementTotalsOut(Schema):
    count = fields.Integer(required=True, validate=COUNT)
    total_fen = _fen()
    account_fen = _fen()
    mutual_aid_fen = _fen()
    cash_fen = _fen()


class StatementNetOut(Schema):
    total_fen = fields.Integer(required=True, validate=SIGNED_FEN)
    insurance_fen = fields.Integer(required=True, validate=SIGNED_FEN)
    cash_fen = fields.Integer(required=True, validate=SIGNED_FEN)


class StatementLedgerOut(Schema):
    clearing_fen = fields.Integer(required=True, validate=SIGNED_FEN)
    insurance_fen = fields.Integer(required=True, validate=SIGNED_FEN)
    cash_fen = fields.Integer(required=True, validate=SIGNED_FEN)


class StatementOut(Schema):
    org_id = fields.String(required=True)
    date = fields.String(required=True, metadata={"format": "date"})
    timezone = fields.String(required=True, validate=validate.OneOf(["Asia/Shanghai"]))
    payments = fields.Nested(StatementTotalsOut, required=True)
    refunds = fields.Nested(StatementTotalsOut, required=True)
    net = fields.Nested(StatementNetOut, required=True)
    ledger = fields.Nested(StatementLedgerOut, required=True)
    reconciled = fields.Boolean(required=True)


class ReconciliationOut(Schema):
    unbalanced_transactions = fields.Integer(required=True, validate=COUNT)
    unsealed_transactions = fields.Integer(required=True, validate=COUNT)
    balance_mismatches = fields.List(
        fields.Integer(), required=True, metadata={"description": "Ids of personal accounts."}
    )
    negative_balances = fields.Integer(required=True, validate=COUNT)
    ledger_total_fen = fields.Integer(required=True)
    ok = fields.Boolean(required=True)


class ContributionOut(Schema):
    psn_no = fields.String(required=True)
    year = fields.Integer(required=True, validate=validate.Range(min=1990, max=2200))
    amount_fen = _fen()
    balance_fen = _fen()
    created = fields.Boolean(
        required=True, metadata={"description": "false: this contribution was already credited."}
    )


class WebhookOut(Schema):
    url = fields.String(required=True, metadata={"format": "uri"})
    secret = fields.String(
        required=True,
        validate=validate.Regexp(r"^whsec_[A-Za-z0-9+/]+={0,2}$"),
        metadata={"description": "Standard Webhooks signing secret."},
    )
