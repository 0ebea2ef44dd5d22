"""Request and response schemas of the family endpoints (the OpenAPI document is built from them)."""

from __future__ import annotations

from marshmallow import fields, validate

from yibao.api import Schema
from yibao.registry.schemas import IdNumber, Name

from .bindings import BINDING_RELATIONSHIPS, GUARDIAN_RELATIONSHIPS
from .models import BINDING_STATUSES, FILING_STATUSES
from .mutual_aid import MUTUAL_AID_RELATIONSHIPS

# The shape registry.new_psn_no() gives every insured person: "psn_" and 16 URL-safe characters.
PSN_NO_PATTERN = r"^psn_[A-Za-z0-9_-]{16}$"
# Documented for clients; the IdNumber field checks the region, birth date and check digit too.
ID_NUMBER_DOC = {
    "pattern": r"^[0-9]{17}[0-9Xx]$",
    "minLength": 18,
    "maxLength": 18,
    "description": "18-digit resident ID number (GB 11643) with a valid check character.",
}


class BindingCreateSchema(Schema):
    member_id_number = IdNumber(required=True, metadata=ID_NUMBER_DOC)
    member_name = Name(required=True, validate=validate.Length(min=1, max=30))
    relationship = fields.String(
        required=True,
        validate=validate.Length(min=1, max=32),
        metadata={
            "enum": list(BINDING_RELATIONSHIPS),
            "description": "What the member is to you (RELATIONSHIP_NOT_ALLOWED otherwise); a member aged 16 "
            f"or under only as {', '.join(GUARDIAN_RELATIONSHIPS)} with a guardian proof.",
        },
    )
    guardian_proof = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=4096),
        metadata={"description": "Required for a member aged 16 or under; refused for older members."},
    )


class PartySchema(Schema):
    psn_no = fields.String(required=True)
    name_masked = fields.String(required=True)
    id_number_masked = fields.String(required=True)


class BindingSchema(Schema):
    binding_id = fields.String(attribute="binding.binding_no", required=True)
    status = fields.String(required=True, metadata={"enum": list(BINDING_STATUSES)})
    role = fields.String(
        required=True, metadata={"enum": ["binder", "member"], "description": "your side of this binding"}
    )
    relationship = fields.String(
        attribute="binding.relationship", required=True, metadata={"enum": list(BINDING_RELATIONSHIPS)}
    )
    basis = fields.String(
        attribute="binding.basis", required=True, metadata={"enum": ["consent", "guardian"]}
    )
    pending_reason = fields.String(
        attribute="binding.pending_reason",
        allow_none=True,
        metadata={
            "enum": ["awaiting_member", "came_of_age", None],
            "description": "came_of_age: a child bound by a guardian turned 17 and must approve",
        },
    )
    expires_at = fields.DateTime(attribute="binding.expires_at", allow_none=True)
    created_at = fields.DateTime(attribute="binding.created_at", required=True)
    activated_at = fields.DateTime(attribute="binding.activated_at", allow_none=True)
    consented_at = fields.DateTime(attribute="binding.consented_at", allow_none=True)
    ended_at = fields.DateTime(attribute="binding.ended_at", allow_none=True)
    ended_by = fields.String(
        attribute="binding.ended_by", allow_none=True, metadata={"enum": ["binder", "member", "system", None]}
    )
    binder = fields.Nested(PartySchema, required=True)
    member = fields.Nested(PartySchema, required=True)


class BindingListSchema(Schema):
    bindings = fields.List(fields.Nested(BindingSchema), required=True)


class EventSchema(Schema):
    binding_id = fields.String(required=True)
    event = fields.String(
        required=True,
        metadata={
            "enum": ["requested", "guardian_bound", "approved", "declined", "ended", "expired", "came_of_age"]
        },
    )
    actor_role = fields.String(required=True, metadata={"enum": ["binder", "member", "system"]})
    status_after = fields.String(required=True, metadata={"enum": list(BINDING_STATUSES)})
    at = fields.DateTime(required=True)


class EventListSchema(Schema):
    events = fields.List(fields.Nested(EventSchema), required=True)


class MutualAidFilingCreateSchema(Schema):
    member_psn_no = fields.String(
        required=True,
        validate=[validate.Length(equal=20), validate.Regexp(PSN_NO_PATTERN)],
        metadata={"description": "The relative's psn_no. The answer is the same whether or not it exists."},
    )
    relationship = fields.String(
        required=True,
        validate=validate.Length(min=1, max=32),
        metadata={
            "enum": list(MUTUAL_AID_RELATIONSHIPS),
            "description": "What the member is to you: a close relative "
            "(RELATIONSHIP_NOT_ALLOWED otherwise).",
        },
    )


class FilingPartySchema(Schema):
    psn_no = fields.String(required=True)
    name_masked = fields.String(
        required=True,
        allow_none=True,
        metadata={
            "description": "null for the member until they approve (the holder sees only the psn_no typed)"
        },
    )
    id_number_masked = fields.String(
        required=True, allow_none=True, metadata={"description": "null like name_masked"}
    )


class MutualAidFilingSchema(Schema):
    filing_id = fields.String(attribute="filing.filing_no", required=True)
    status = fields.String(
        required=True,
        metadata={
            "enum": list(FILING_STATUSES),
            "description": "pending until the member approves (only an active filing moves money); "
            "a pending filing expires after 7 days",
        },
    )
    role = fields.String(
        required=True, metadata={"enum": ["holder", "member"], "description": "your side of this filing"}
    )
    relationship = fields.String(
        attribute="filing.relationship", required=True, metadata={"enum": list(MUTUAL_AID_RELATIONSHIPS)}
    )
    created_at = fields.DateTime(attribute="filing.created_at", required=True)
    expires_at = fields.DateTime(
        attribute="filing.expires_at", allow_none=True, metadata={"description": "while pending or expired"}
    )
    approved_at = fields.DateTime(attribute="filing.approved_at", allow_none=True)
    declined_at = fields.DateTime(attribute="filing.declined_at", allow_none=True)
    withdrawn_at = fields.DateTime(attribute="filing.withdrawn_at", allow_none=True)
    withdrawn_by = fields.String(
        attribute="filing.withdrawn_by",
        allow_none=True,
        metadata={
            "enum": ["holder", "member", None],
            "description": "who ended a withdrawn filing: the holder's offer or the member's consent",
        },
    )
    holder = fields.Nested(FilingPartySchema, required=True)
    member = fields.Nested(FilingPartySchema, required=True)


class MutualAidFilingListSchema(Schema):
    filings = fields.List(fields.Nested(MutualAidFilingSchema), required=True)
