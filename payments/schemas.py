"""Request and response schemas of the payments API."""

from __future__ import annotations

import datetime as dt

import marshmallow as ma
from marshmallow import fields, validate

from yibao.api import Schema
from yibao.db import MAX_ID
from yibao.errors import register_field_messages

_ONE_GRANT = "Send exactly one of pay_auth_no and ec_token."
register_field_messages({_ONE_GRANT: "pay_auth_no 与 ec_token 必须且只能提供一个。"})


class PayAuthorizationIn(Schema):
    purpose = fields.String(required=True, validate=validate.OneOf(["online_otc", "counter"]))
    on_behalf_of = fields.String(load_default=None, validate=validate.Length(min=1, max=32))


class PayAuthorizationOut(Schema):
    pay_auth_no = fields.String()
    purpose = fields.String()
    expires_at = fields.String()
    expires_in = fields.Integer()


class ItemIn(Schema):
    drug_code = fields.String(required=True, validate=validate.Length(min=1, max=64))
    drug_name = fields.String(required=True, validate=validate.Length(min=1, max=128))
    otc = fields.Boolean(required=True, truthy={True}, falsy={False})
    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=100_000))
    # No upper bound here: totals beyond 2^53 fen get their own code (AMOUNT_TOO_LARGE).
    unit_price_fen = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    trace_codes = fields.List(fields.String(), load_default=list, validate=validate.Length(max=100_000))


class OrderIn(Schema):
    pay_auth_no = fields.String(load_default=None, validate=validate.Length(min=1, max=64))
    ec_token = fields.String(load_default=None, validate=validate.Length(min=1, max=40))
    merchant_order_no = fields.String(required=True, validate=validate.Length(min=1, max=64))
    items = fields.List(fields.Nested(ItemIn), required=True, validate=validate.Length(min=1, max=200))
    delivery_fee_fen = fields.Integer(load_default=0, strict=True, validate=validate.Range(min=0))
    account_only = fields.Boolean(
        load_default=False,
        truthy={True},
        falsy={False},
        metadata={
            "description": "Refuse with INSUFFICIENT_BALANCE instead of letting cash cover a drug shortfall "
            "(delivery is always cash)."
        },
    )

    @ma.validates_schema
    def _one_grant(self, data: dict, **_: object) -> None:
        if (data.get("pay_auth_no") is None) == (data.get("ec_token") is None):
            raise ma.ValidationError(_ONE_GRANT, "pay_auth_no")


class OrderOut(Schema):
    pay_order_id = fields.String()
    merchant_order_no = fields.String()
    status = fields.String()
    purpose = fields.String()
    account_only = fields.Boolean()
    total_fen = fields.Integer()
    drug_fen = fields.Integer()
    delivery_fee_fen = fields.Integer()
    account_pay_fen = fields.Integer()
    mutual_aid_pay_fen = fields.Integer()
    cash_pay_fen = fields.Integer()
    refunded_fen = fields.Integer()
    created_at = fields.String()
    paid_at = fields.String(allow_none=True)


class RefundIn(Schema):
    amount_fen = fields.Integer(load_default=None, strict=True, validate=validate.Range(min=1))
    reason = fields.String(required=True, validate=validate.Length(min=1, max=256))
    trace_codes = fields.List(
        fields.String(),
        load_default=list,
        metadata={
            "description": "Codes of the returned boxes to release (all are released by a final refund)."
        },
    )


class RefundOut(Schema):
    refund_id = fields.String()
    status = fields.String()
    amount_fen = fields.Integer()
    account_refund_fen = fields.Integer()
    mutual_aid_refund_fen = fields.Integer()
    cash_refund_fen = fields.Integer()
    released_trace_codes = fields.List(fields.String())


class AccountQuery(Schema):
    on_behalf_of = fields.String(load_default=None, validate=validate.Length(min=1, max=32))


class EntriesQuery(Schema):
    on_behalf_of = fields.String(load_default=None, validate=validate.Length(min=1, max=32))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_ID))


class AccountOut(Schema):
    psn_no = fields.String()
    balance_fen = fields.Integer()


class StatementQuery(Schema):
    date = fields.Date(
        required=True, validate=validate.Range(min=dt.date(2000, 1, 1), max=dt.date(9999, 12, 30))
    )


class ContributionIn(Schema):
    psn_no = fields.String(required=True, validate=validate.Length(min=1, max=32))
    year = fields.Integer(required=True, strict=True, validate=validate.Range(min=1990, max=2200))
    amount_fen = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))


class WebhookIn(Schema):
    url = fields.Url(load_default=None, schemes={"http", "https"}, require_tld=False)
