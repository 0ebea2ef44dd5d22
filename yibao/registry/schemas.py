"""Request and response schemas of the operator (admin) endpoints."""

from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates, validates_schema

from yibao.api import Schema
from yibao.db import MAX_INT_ID

from .models import INSTITUTION_KINDS, INSTITUTION_STATUSES, INSURANCE_TYPES, PERSON_STATUSES, SERVICES
from .validators import is_valid_id_number, is_valid_name, is_valid_region, normalize_id_number

MAX_FEN = 2**53 - 1


class IdNumber(fields.String):
    """An 18-digit resident ID number with a valid check digit."""

    def _deserialize(self, value, attr, data, **kwargs):  # type: ignore[no-untyped-def]
        value = super()._deserialize(value, attr, data, **kwargs)
        value = normalize_id_number(value)
        if not is_valid_id_number(value):
            raise ValidationError("Not a valid 18-digit resident ID number (ID_NUMBER_INVALID).")
        return value


class Name(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):  # type: ignore[no-untyped-def]
        value = super()._deserialize(value, attr, data, **kwargs).strip()
        if not is_valid_name(value):
            raise ValidationError("Not a valid person name.")
        return value


class RegionCode(fields.String):
    """A 6-digit administrative division code that exists."""

    def _deserialize(self, value, attr, data, **kwargs):  # type: ignore[no-untyped-def]
        value = super()._deserialize(value, attr, data, **kwargs)
        if not is_valid_region(value):
            raise ValidationError("Unknown administrative region code (REGION_UNKNOWN).")
        return value


class PersonCreateSchema(Schema):
    name = Name(required=True)
    id_number = IdNumber(required=True)
    insurance_type = fields.String(required=True, validate=validate.OneOf(INSURANCE_TYPES))
    insured_region = RegionCode(required=True)
    personal_account_balance_fen = fields.Integer(
        load_default=None, allow_none=True, strict=True, validate=validate.Range(min=0, max=MAX_FEN)
    )
    status = fields.String(load_default="active", validate=validate.OneOf(PERSON_STATUSES))

    @validates_schema
    def _balance_needs_account(self, data: dict, **_: object) -> None:
        if data.get("personal_account_balance_fen") and data.get("insurance_type") != "employee":
            raise ValidationError(
                "Only employee insurance has a personal account.", field_name="personal_account_balance_fen"
            )


class PersonCreatedSchema(Schema):
    psn_no = fields.String()


class PersonSchema(Schema):
    psn_no = fields.String()
    name_masked = fields.String()
    id_number_masked = fields.String()
    insurance_type = fields.String()
    insured_region = fields.String()
    status = fields.String()
    has_personal_account = fields.Boolean()
    activated = fields.Function(lambda p: p.activated_at is not None)
    created_at = fields.DateTime()


class PersonLookupSchema(Schema):
    id_number = IdNumber(required=True)


class PersonListQuerySchema(Schema):
    status = fields.String(load_default=None, validate=validate.OneOf(PERSON_STATUSES))
    insurance_type = fields.String(load_default=None, validate=validate.OneOf(INSURANCE_TYPES))
    insured_region = RegionCode(load_default=None)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_INT_ID))


class PersonPageSchema(Schema):
    items = fields.List(fields.Nested(PersonSchema))
    next_cursor = fields.Integer(allow_none=True)


class PersonUpdateSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(PERSON_STATUSES))


class FilingCreateSchema(Schema):
    region = RegionCode(required=True)
    valid_from = fields.Date(load_default=None)
    valid_until = fields.Date(load_default=None)


class FilingSchema(Schema):
    filing_no = fields.String()
    region = fields.String()
    valid_from = fields.Date()
    valid_until = fields.Date(allow_none=True)


class InstitutionUpdateSchema(Schema):
    status = fields.String(validate=validate.OneOf(INSTITUTION_STATUSES))
    services = fields.List(
        fields.String(validate=validate.OneOf(SERVICES)), validate=validate.Length(min=1, max=16)
    )

    @validates_schema
    def _not_empty(self, data: dict, **_: object) -> None:
        if not data:
            raise ValidationError("Give status, services or both.", field_name="_schema")


class InstitutionListQuerySchema(Schema):
    kind = fields.String(load_default=None, validate=validate.OneOf(INSTITUTION_KINDS))
    region = RegionCode(load_default=None)
    status = fields.String(load_default=None, validate=validate.OneOf(INSTITUTION_STATUSES))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_INT_ID))


class InstitutionCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=128))
    kind = fields.String(required=True, validate=validate.OneOf(INSTITUTION_KINDS))
    region = RegionCode(required=True)
    services = fields.List(
        fields.String(validate=validate.OneOf(SERVICES)),
        required=True,
        validate=validate.Length(min=1, max=16),
    )
    webhook_url = fields.Url(load_default=None, allow_none=True, schemes={"http", "https"})

    @validates("name")
    def _name(self, value: str, **_: object) -> None:
        if not value.strip():
            raise ValidationError("Must not be blank.")

    @validates_schema
    def _online_otc_needs_online_pharmacy(self, data: dict, **_: object) -> None:
        # In the schema so the CLI refuses it too, not only the HTTP endpoint.
        if data.get("kind") != "online_pharmacy" and "online_otc" in (data.get("services") or []):
            raise ValidationError("online_otc is for online pharmacies only.", field_name="services")


class InstitutionCredentialsSchema(Schema):
    org_id = fields.String()
    key_id = fields.String()
    secret = fields.String(metadata={"description": "Shown once; store it in the institution's vault."})


class InstitutionSchema(Schema):
    org_id = fields.String()
    name = fields.String()
    kind = fields.String()
    region = fields.String()
    services = fields.List(fields.String())
    key_id = fields.String()
    status = fields.String()
    webhook_url = fields.String(allow_none=True)


class InstitutionPageSchema(Schema):
    items = fields.List(fields.Nested(InstitutionSchema))
    next_cursor = fields.Integer(allow_none=True)
