"""Request and response schemas of the family endpoints."""

from __future__ import annotations

from marshmallow import fields, validate

from yibao.api import Schema
from yibao.registry.schemas import IdNumber, Name


class BindingCreateSchema(Schema):
    member_id_number = IdNumber(required=True)
    member_name = Name(required=True)
    relationship = fields.String(
        required=True,
        validate=validate.Length(min=1, max=32),
        metadata={
            "description": "What the member is to you: parent, spouse, child, grandparent, grandchild, "
            "sibling, parent_in_law, child_in_law (RELATIONSHIP_NOT_ALLOWED otherwise)."
        },
    )
    guardian_proof = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=4096),
        metadata={"description": "Required for a member aged 16 or under; refused for older members."},
    )


class PartySchema(Schema):
    psn_no = fields.String()
    name_masked = fields.String()
    id_number_masked = fields.String()


class BindingSchema(Schema):
    binding_id = fields.String(attribute="binding.binding_no")
    status = fields.String(metadata={"description": "pending | active | declined | ended | expired"})
    role = fields.String(metadata={"description": "binder | member: your side of this binding"})
    relationship = fields.String(attribute="binding.relationship")
    basis = fields.String(attribute="binding.basis", metadata={"description": "consent | guardian"})
    pending_reason = fields.String(
        attribute="binding.pending_reason",
        allow_none=True,
        metadata={"description": "awaiting_member | came_of_age (a child bound by a guardian turned 17)"},
    )
    expires_at = fields.DateTime(attribute="binding.expires_at", allow_none=True)
    created_at = fields.DateTime(attribute="binding.created_at")
    activated_at = fields.DateTime(attribute="binding.activated_at", allow_none=True)
    consented_at = fields.DateTime(attribute="binding.consented_at", allow_none=True)
    ended_at = fields.DateTime(attribute="binding.ended_at", allow_none=True)
    ended_by = fields.String(attribute="binding.ended_by", allow_none=True)
    binder = fields.Nested(PartySchema)
    member = fields.Nested(PartySchema)


class BindingListSchema(Schema):
    bindings = fields.List(fields.Nested(BindingSchema))


class EventSchema(Schema):
    binding_id = fields.String()
    event = fields.String(
        metadata={
            "description": "requested | guardian_bound | approved | declined | ended | expired | came_of_age"
        }
    )
    actor_role = fields.String(metadata={"description": "binder | member | system"})
    status_after = fields.String()
    at = fields.DateTime()


class EventListSchema(Schema):
    events = fields.List(fields.Nested(EventSchema))


class MutualAidFilingCreateSchema(Schema):
    member_psn_no = fields.String(required=True, validate=validate.Length(min=1, max=32))
    relationship = fields.String(
        required=True,
        validate=validate.Length(min=1, max=32),
        metadata={
            "description": "What the member is to you: spouse, parent, child, sibling, grandparent, "
            "grandchild (RELATIONSHIP_NOT_ALLOWED otherwise)."
        },
    )


class MutualAidFilingSchema(Schema):
    filing_id = fields.String(attribute="filing.filing_no")
    status = fields.String(attribute="filing.status", metadata={"description": "active | withdrawn"})
    role = fields.String(metadata={"description": "holder | member: your side of this filing"})
    relationship = fields.String(attribute="filing.relationship")
    created_at = fields.DateTime(attribute="filing.created_at")
    withdrawn_at = fields.DateTime(attribute="filing.withdrawn_at", allow_none=True)
    holder = fields.Nested(PartySchema)
    member = fields.Nested(PartySchema)


class MutualAidFilingListSchema(Schema):
    filings = fields.List(fields.Nested(MutualAidFilingSchema))
