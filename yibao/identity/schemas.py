"""Schemas of identity proofs, activation and session refresh."""

from __future__ import annotations

from marshmallow import fields, validate

from yibao.api import Schema
from yibao.registry.schemas import IdNumber, Name, out


class IdentityProofRequestSchema(Schema):
    id_number = IdNumber(required=True)
    name = Name(required=True)
    guardian_of = IdNumber(
        load_default=None, metadata={"description": "The child's ID number (guardian proof)."}
    )


class IdentityProofSchema(Schema):
    identity_proof = out(fields.String())
    expires_in = out(fields.Integer(validate=validate.Range(min=1), metadata={"description": "Seconds."}))


class ActivationRequestSchema(Schema):
    id_number = IdNumber(required=True)
    name = Name(required=True)
    identity_proof = fields.String(required=True, validate=validate.Length(min=1, max=2048))
    device_id = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9._:-]{4,128}$"))


TTL_DOC = "Access token lifetime, seconds."


def _token_fields() -> dict[str, fields.Field]:
    return {
        "access_token": out(fields.String()),
        "refresh_token": out(fields.String()),
        "token_type": out(fields.String(dump_default="Bearer", validate=validate.OneOf(["Bearer"]))),
        "expires_in": out(fields.Integer(validate=validate.Range(min=1), metadata={"description": TTL_DOC})),
    }


# The answer of /sessions/refresh; /activations adds psn_no first.
TokenPairSchema = Schema.from_dict(_token_fields(), name="TokenPairSchema")
ActivationSchema = Schema.from_dict(
    {"psn_no": out(fields.String()), **_token_fields()}, name="ActivationSchema"
)


class RefreshRequestSchema(Schema):
    refresh_token = fields.String(required=True, validate=validate.Length(min=1, max=256))
