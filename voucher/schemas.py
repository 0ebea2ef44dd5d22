"""Request and response schemas of the voucher endpoints: the OpenAPI document's truth."""

from __future__ import annotations

from marshmallow import fields, validate

from supervision.schemas import SupervisionFindingOut
from yibao.api import Schema
from yibao.registry.models import BUSINESS_TYPES

from .token import KID_RE, MAX_QR_CONTENT
from .usage import USAGE_PAGE_MAX

_BUSINESS_TYPE = validate.OneOf(sorted(BUSINESS_TYPES))
_BUSINESS_TYPES_DOC = "; ".join(f"`{k}` {v}" for k, v in sorted(BUSINESS_TYPES.items()))
# A usage cursor is unpadded base64url of {"id": <int>} (as returned in next_cursor).
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+={0,2}$"


class IssueQuerySchema(Schema):
    qr = fields.String(
        validate=validate.OneOf(["png", "svg"]),
        load_default=None,
        metadata={"description": "Also return the QR image as a data: URI"},
    )


class IssueRequestSchema(Schema):
    """The optional body of POST /vouchers: an empty body (or none) issues the caller's own code."""

    on_behalf_of = fields.String(
        validate=validate.Length(1, 32),
        load_default=None,
        metadata={"description": "psn_no of a family member whose code the caller shows"},
    )


class VoucherSchema(Schema):
    token = fields.String(required=True, metadata={"description": "The voucher as a compact JWS (EdDSA)"})
    qr_content = fields.String(
        required=True,
        metadata={"description": "The exact text to render as the QR code", "maxLength": MAX_QR_CONTENT},
    )
    expires_at = fields.DateTime(required=True)
    expires_in = fields.Integer(required=True, metadata={"minimum": 0, "description": "seconds"})
    qr = fields.String(
        required=True, allow_none=True, metadata={"description": "data: URI of the PNG or SVG (?qr=)"}
    )


class RevocationSchema(Schema):
    revoked_before = fields.DateTime(
        required=True, metadata={"description": "Codes issued before this instant are void"}
    )


class UsageQuerySchema(Schema):
    psn_no = fields.String(
        validate=validate.Length(1, 32),
        load_default=None,
        metadata={"description": "A family member's history (needs the read_usage permission)"},
    )
    limit = fields.Integer(validate=validate.Range(1, USAGE_PAGE_MAX), load_default=20)
    cursor = fields.String(
        validate=[validate.Length(1, 64), validate.Regexp(CURSOR_PATTERN)],
        load_default=None,
        metadata={"description": "next_cursor of the previous page"},
    )


class InstitutionRefSchema(Schema):
    org_id = fields.String(required=True)
    name = fields.String(required=True)


class UsageItemSchema(Schema):
    at = fields.DateTime(required=True)
    institution = fields.Nested(InstitutionRefSchema, required=True)
    business_type = fields.String(required=True, validate=_BUSINESS_TYPE)
    result = fields.String(required=True, validate=validate.OneOf(["accepted", "refused"]))
    code = fields.String(required=True, allow_none=True, metadata={"description": "the refusal code"})
    operator_id = fields.String(required=True)
    device_id = fields.String(required=True)
    out_biz_no = fields.String(required=True)
    acted_by = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "psn_no of the family member who showed the code"},
    )
    kind = fields.String(
        required=True,
        validate=validate.OneOf(["signed", "offline"]),
        metadata={
            "description": "`signed` (issued by POST /vouchers) or `offline` (a YO1 code made on the phone)"
        },
    )


class UsagePageSchema(Schema):
    items = fields.List(fields.Nested(UsageItemSchema), required=True)
    next_cursor = fields.String(
        required=True, allow_none=True, metadata={"description": "null on the last page"}
    )


class VerificationRequestSchema(Schema):
    # Any JSON value is accepted here and judged by the verifier, so that every malformed
    # scan (wrong type, oversized) answers VOUCHER_MALFORMED rather than a generic 422.
    qr_content = fields.Raw(
        required=True,
        allow_none=True,
        metadata={
            "type": "string",
            "maxLength": MAX_QR_CONTENT,
            "description": "The scanned text (QR form `YB1:…`, compact JWS, or an offline code "
            "`YO1:…`); anything else is VOUCHER_MALFORMED",
        },
    )
    business_type = fields.String(
        required=True, validate=_BUSINESS_TYPE, metadata={"description": _BUSINESS_TYPES_DOC}
    )
    operator_id = fields.String(required=True, validate=validate.Length(1, 64))
    operator_name = fields.String(required=True, validate=validate.Length(1, 64))
    device_id = fields.String(required=True, validate=validate.Length(1, 128))
    out_biz_no = fields.String(required=True, validate=validate.Length(1, 64))


class PersonViewSchema(Schema):
    psn_no = fields.String(required=True)
    name_masked = fields.String(required=True)
    id_number_masked = fields.String(required=True)
    insurance_type = fields.String(required=True, validate=validate.OneOf(["employee", "resident"]))
    insured_region = fields.String(required=True, metadata={"pattern": "^[0-9]{6}$"})
    has_personal_account = fields.Boolean(required=True)


class VerificationSchema(Schema):
    ec_token = fields.String(
        required=True, metadata={"description": "Opaque, 30 minutes, for this institution", "maxLength": 40}
    )
    expires_in = fields.Integer(required=True, metadata={"description": "seconds"})
    business_type = fields.String(required=True, validate=_BUSINESS_TYPE)
    person = fields.Nested(PersonViewSchema, required=True)
    warnings = fields.List(
        fields.Nested(SupervisionFindingOut),
        required=True,
        metadata={
            "description": "Fund-supervision identity rules (identity_velocity) of action `warn` this scan "
            "breaks: the scan is accepted and an alert recorded; empty when none. A `block` rule answers "
            "422 SUPERVISION_BLOCKED with `violations` instead."
        },
    )


class JwkSchema(Schema):
    kty = fields.String(required=True, validate=validate.OneOf(["OKP"]))
    crv = fields.String(required=True, validate=validate.OneOf(["Ed25519"]))
    kid = fields.String(required=True, metadata={"pattern": "^" + KID_RE.pattern + "$"})
    alg = fields.String(required=True, validate=validate.OneOf(["EdDSA"]))
    use = fields.String(required=True, validate=validate.OneOf(["sig"]))
    x = fields.String(required=True, metadata={"description": "base64url raw Ed25519 public key"})


class JwksSchema(Schema):
    keys = fields.List(fields.Nested(JwkSchema), required=True)


DEVICE_ID_PATTERN = r"^[A-Za-z0-9._:-]{4,128}$"  # as at activation (yibao/identity/schemas.py)
CREDENTIAL_ID_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"


class OfflineCredentialRequestSchema(Schema):
    device_id = fields.String(
        required=True,
        validate=validate.Regexp(DEVICE_ID_PATTERN),
        metadata={"description": "The device the e-voucher is activated on (as sent to POST /activations)"},
    )


class NewOfflineCredentialSchema(Schema):
    credential_id = fields.String(required=True, metadata={"pattern": CREDENTIAL_ID_PATTERN})
    secret = fields.String(
        required=True,
        metadata={
            "pattern": "^[A-Z2-7]{52}$",
            "description": "32 random bytes, upper-case base32 without padding; shown only in this answer",
        },
    )
    period_s = fields.Integer(required=True, validate=validate.OneOf([30]))
    algorithm = fields.String(required=True, validate=validate.OneOf(["HMAC-SHA256"]))
    format = fields.String(required=True, validate=validate.OneOf(["YO1"]))
    device_id = fields.String(required=True)
    created_at = fields.DateTime(required=True)


class OfflineCredentialSchema(Schema):
    credential_id = fields.String(required=True, metadata={"pattern": CREDENTIAL_ID_PATTERN})
    device_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["active", "ended"]))
    created_at = fields.DateTime(required=True)
    ended_at = fields.DateTime(required=True, allow_none=True)
    ended_reason = fields.String(
        required=True,
        allow_none=True,
        validate=validate.OneOf(["replaced", "deleted", "revoked", "suspended", "new_device"]),
    )


class OfflineCredentialListSchema(Schema):
    items = fields.List(fields.Nested(OfflineCredentialSchema), required=True)
