"""Request and response schemas of the operator (admin) endpoints."""

from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates, validates_schema

from yibao.api import Schema
from yibao.db import MAX_INT_ID
from yibao.fields import StrictBoolean

from .models import (
    ASSISTANCE_CATEGORIES,
    INSTITUTION_KINDS,
    INSTITUTION_LEVELS,
    INSTITUTION_STATUSES,
    INSURANCE_TYPES,
    PERSON_STATUSES,
    SERVICES,
)
from .validators import NAME_RE, is_valid_id_number, is_valid_name, is_valid_region, normalize_id_number

MAX_FEN = 2**53 - 1
# What the document shows of the custom fields below; the fields check more (check digit, birth date,
# that a region exists), so a value matching the pattern may still be refused with VALIDATION_FAILED.
ID_NUMBER_PATTERN = r"^[0-9]{17}[0-9X]$"
REGION_PATTERN = r"^[0-9]{6}$"
NAME_PATTERN = NAME_RE.pattern
NAME_MAX = 30


class IdNumber(fields.String):
    """An 18-digit resident ID number with a valid check digit."""

    def __init__(self, **kwargs):  # type: ignore[no-untyped-def]
        meta = {
            "pattern": ID_NUMBER_PATTERN,
            "minLength": 18,
            "maxLength": 18,
            "description": "18-digit resident ID number (GB 11643): province, birth date and check digit "
            "are checked (ID_NUMBER_INVALID); a lower-case x is accepted.",
            **kwargs.pop("metadata", {}),
        }
        super().__init__(metadata=meta, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):  # type: ignore[no-untyped-def]
        value = super()._deserialize(value, attr, data, **kwargs)
        value = normalize_id_number(value)
        if not is_valid_id_number(value):
            raise ValidationError("Not a valid 18-digit resident ID number (ID_NUMBER_INVALID).")
        return value


class Name(fields.String):
    """A person's name as on the ID card: CJK or Latin letters, 1-30 characters."""

    def __init__(self, **kwargs):  # type: ignore[no-untyped-def]
        meta = {"pattern": NAME_PATTERN, "minLength": 1, "maxLength": NAME_MAX, **kwargs.pop("metadata", {})}
        super().__init__(metadata=meta, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):  # type: ignore[no-untyped-def]
        value = super()._deserialize(value, attr, data, **kwargs).strip()
        if not is_valid_name(value):
            raise ValidationError("Not a valid person name.")
        return value


class RegionCode(fields.String):
    """A 6-digit administrative division code that exists."""

    def __init__(self, **kwargs):  # type: ignore[no-untyped-def]
        meta = {
            "pattern": REGION_PATTERN,
            "description": "6-digit administrative division code (GB/T 2260) that exists (REGION_UNKNOWN).",
            **kwargs.pop("metadata", {}),
        }
        super().__init__(metadata=meta, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):  # type: ignore[no-untyped-def]
        value = super()._deserialize(value, attr, data, **kwargs)
        if not is_valid_region(value):
            raise ValidationError("Unknown administrative region code (REGION_UNKNOWN).")
        return value


AID_DOC = "Medical-assistance category: none, dibao (最低生活保障), tekun (特困供养), low_income (低收入)."
RETIRED_MSG = "Only employee insurance has retirees."


class PersonCreateSchema(Schema):
    name = Name(required=True)
    id_number = IdNumber(required=True)
    insurance_type = fields.String(required=True, validate=validate.OneOf(INSURANCE_TYPES))
    insured_region = RegionCode(required=True)
    personal_account_balance_fen = fields.Integer(
        load_default=None, allow_none=True, strict=True, validate=validate.Range(min=0, max=MAX_FEN)
    )
    status = fields.String(load_default="active", validate=validate.OneOf(PERSON_STATUSES))
    retired = StrictBoolean(
        load_default=False,
        metadata={"description": "Retired employee (退休); refused for resident insurance."},
    )
    assistance_category = fields.String(
        load_default="none", validate=validate.OneOf(ASSISTANCE_CATEGORIES), metadata={"description": AID_DOC}
    )

    @validates_schema
    def _balance_needs_account(self, data: dict, **_: object) -> None:
        if data.get("personal_account_balance_fen") and data.get("insurance_type") != "employee":
            raise ValidationError(
                "Only employee insurance has a personal account.", field_name="personal_account_balance_fen"
            )
        if data.get("retired") and data.get("insurance_type") != "employee":
            raise ValidationError(RETIRED_MSG, field_name="retired")


def out(field: fields.Field) -> fields.Field:
    """An output field that is always present (documented required)."""
    field.required = True
    return field


class PersonCreatedSchema(Schema):
    psn_no = out(fields.String())


class PersonSchema(Schema):
    psn_no = out(fields.String())
    name_masked = out(fields.String())
    id_number_masked = out(fields.String(metadata={"pattern": r"^[0-9]{3}\*{11}[0-9]{3}[0-9X]$"}))
    insurance_type = out(fields.String(validate=validate.OneOf(INSURANCE_TYPES)))
    insured_region = out(fields.String(metadata={"pattern": REGION_PATTERN}))
    status = out(fields.String(validate=validate.OneOf(PERSON_STATUSES)))
    has_personal_account = out(fields.Boolean())
    retired = out(fields.Boolean())
    assistance_category = out(fields.String(validate=validate.OneOf(ASSISTANCE_CATEGORIES)))
    activated = out(fields.Function(lambda p: p.activated_at is not None, metadata={"type": "boolean"}))
    created_at = out(fields.DateTime())


class PersonLookupSchema(Schema):
    id_number = IdNumber(required=True)


class PersonListQuerySchema(Schema):
    status = fields.String(load_default=None, validate=validate.OneOf(PERSON_STATUSES))
    insurance_type = fields.String(load_default=None, validate=validate.OneOf(INSURANCE_TYPES))
    insured_region = RegionCode(load_default=None)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_INT_ID))


CURSOR_DOC = "Pass as ?cursor= for the next page; null on the last page."


class PersonPageSchema(Schema):
    items = out(fields.List(fields.Nested(PersonSchema)))
    next_cursor = out(
        fields.Integer(allow_none=True, validate=validate.Range(min=1), metadata={"description": CURSOR_DOC})
    )


class PersonUpdateSchema(Schema):
    status = fields.String(validate=validate.OneOf(PERSON_STATUSES))
    retired = StrictBoolean(metadata={"description": RETIRED_MSG.replace("Only", "Employees only:")})
    assistance_category = fields.String(
        validate=validate.OneOf(ASSISTANCE_CATEGORIES), metadata={"description": AID_DOC}
    )

    @validates_schema
    def _not_empty(self, data: dict, **_: object) -> None:
        if not data:
            raise ValidationError("Give status, retired or assistance_category.", field_name="_schema")


class FilingCreateSchema(Schema):
    region = RegionCode(required=True)
    valid_from = fields.Date(load_default=None)
    valid_until = fields.Date(load_default=None)


class FilingSchema(Schema):
    filing_no = out(fields.String())
    region = out(fields.String(metadata={"pattern": REGION_PATTERN}))
    valid_from = out(fields.Date())
    valid_until = out(fields.Date(allow_none=True))


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


LEVEL_DOC = "Hospital level (医院等级): primary (一级), secondary (二级), tertiary (三级)."


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
    level = fields.String(
        load_default="secondary",
        validate=validate.OneOf(INSTITUTION_LEVELS),
        metadata={"description": LEVEL_DOC},
    )

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
    org_id = out(fields.String())
    key_id = out(fields.String())
    secret = out(fields.String(metadata={"description": "Shown once; store it in the institution's vault."}))


class InstitutionSchema(Schema):
    org_id = out(fields.String())
    name = out(fields.String())
    kind = out(fields.String(validate=validate.OneOf(INSTITUTION_KINDS)))
    region = out(fields.String(metadata={"pattern": REGION_PATTERN}))
    services = out(fields.List(fields.String(validate=validate.OneOf(SERVICES))))
    key_id = out(fields.String())
    status = out(fields.String(validate=validate.OneOf(INSTITUTION_STATUSES)))
    level = out(fields.String(validate=validate.OneOf(INSTITUTION_LEVELS)))
    webhook_url = out(fields.String(allow_none=True))


class InstitutionPageSchema(Schema):
    items = out(fields.List(fields.Nested(InstitutionSchema)))
    next_cursor = out(
        fields.Integer(allow_none=True, validate=validate.Range(min=1), metadata={"description": CURSOR_DOC})
    )
