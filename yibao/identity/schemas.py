"""Schemas of identity proofs, activation and session refresh."""

from __future__ import annotations

from marshmallow import fields, validate

from yibao.api import Schema
from yibao.registry.schemas import IdNumber, Name


class IdentityProofRequestSchema(Schema):
    id_number = IdNumber(required=True)
    name = Name(required=True)
    guardian_of = IdNumber(
        load_default=None, metadata={"description": "The child's ID number (guardian proof)."}
    )


class IdentityProofSchema(Schema):
    identity_proof = fields.String()
    expires_in = fields.Integer()


class ActivationRequestSchema(Schema):
    id_number = IdNumber(required=True)
    name = Name(required=True)
    identity_proof = fields.String(required=True, validate=validate.Length(min=1, max=2048))
    device_id = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9._:-]{4,128}$"))


class TokenPairSchema(Schema):
    psn_no = fields.String()
    access_token = fields.String()
    refresh_token = fields.String()
    token_type = fields.String(dump_default="Bearer")
    expires_in = fields.Integer()


class RefreshRequestSchema(Schema):
    refresh_token = fields.String(required=True, validate=validate.Length(min=1, max=256))
