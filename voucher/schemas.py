"""Request and response schemas of the voucher endpoints."""

from __future__ import annotations

from marshmallow import fields, validate

from yibao.api import Schema
from yibao.registry.models import BUSINESS_TYPES

from .services import USAGE_PAGE_MAX
from .token import MAX_QR_CONTENT


class IssueQuerySchema(Schema):
    qr = fields.String(validate=validate.OneOf(["png", "svg"]), load_default=None)


class IssueRequestSchema(Schema):
    on_behalf_of = fields.String(
        validate=validate.Length(1, 32),
        load_default=None,
        metadata={"description": "psn_no of a family member whose code the caller shows"},
    )


class VoucherSchema(Schema):
    token = fields.String(metadata={"description": "The voucher as a compact JWS (EdDSA)"})
    qr_content = fields.String(metadata={"description": "The exact text to render as the QR code"})
    expires_at = fields.DateTime()
    expires_in = fields.Integer()
    qr = fields.String(allow_none=True, metadata={"description": "data: URI of the PNG or SVG"})


class RevocationSchema(Schema):
    revoked_before = fields.DateTime()


class UsageQuerySchema(Schema):
    psn_no = fields.String(validate=validate.Length(1, 32), load_default=None)
    limit = fields.Integer(validate=validate.Range(1, USAGE_PAGE_MAX), load_default=20)
    cursor = fields.String(validate=validate.Length(1, 200), load_default=None)


class InstitutionRefSchema(Schema):
    org_id = fields.String()
    name = fields.String()


class UsageItemSchema(Schema):
    at = fields.DateTime()
    institution = fields.Nested(InstitutionRefSchema)
    business_type = fields.String()
    result = fields.String(metadata={"description": "accepted | refused"})
    code = fields.String(allow_none=True, metadata={"description": "the refusal code"})
    operator_id = fields.String()
    device_id = fields.String()
    out_biz_no = fields.String()
    acted_by = fields.String(
        allow_none=True, metadata={"description": "psn_no of the family member who showed the code"}
    )


class UsagePageSchema(Schema):
    items = fields.List(fields.Nested(UsageItemSchema))
    next_cursor = fields.String(allow_none=True)


class VerificationRequestSchema(Schema):
    # Any JSON value is accepted here and judged by the verifier, so that every malformed
    # scan (wrong type, oversized) answers VOUCHER_MALFORMED rather than a generic 422.
    qr_content = fields.Raw(
        required=True,
        allow_none=True,
        metadata={"type": "string", "maxLength": MAX_QR_CONTENT, "description": "The scanned text"},
    )
    business_type = fields.String(required=True, validate=validate.OneOf(sorted(BUSINESS_TYPES)))
    operator_id = fields.String(required=True, validate=validate.Length(1, 64))
    operator_name = fields.String(required=True, validate=validate.Length(1, 64))
    device_id = fields.String(required=True, validate=validate.Length(1, 128))
    out_biz_no = fields.String(required=True, validate=validate.Length(1, 64))


class PersonViewSchema(Schema):
    psn_no = fields.String()
    name_masked = fields.String()
    id_number_masked = fields.String()
    insurance_type = fields.String()
    insured_region = fields.String()
    has_personal_account = fields.Boolean()


class VerificationSchema(Schema):
    ec_token = fields.String()
    expires_in = fields.Integer()
    business_type = fields.String()
    person = fields.Nested(PersonViewSchema)
