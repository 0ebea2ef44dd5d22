"""Request and response schemas of the benefit-policy and benefits endpoints."""

from __future__ import annotations

from marshmallow import fields, validate

from yibao.api import Schema

from .policy import MAX_FEN

PCT = validate.Range(min=0, max=100)
FEN = validate.Range(min=0, max=MAX_FEN)


def pct(description: str = "") -> fields.Integer:
    return fields.Integer(required=True, strict=True, validate=PCT, metadata={"description": description})


def fen(description: str = "") -> fields.Integer:
    return fields.Integer(required=True, strict=True, validate=FEN, metadata={"description": description})


class LevelFenSchema(Schema):
    primary = fen()
    secondary = fen()
    tertiary = fen()


class LevelPctSchema(Schema):
    primary = pct()
    secondary = pct()
    tertiary = pct()


class MedTypePolicySchema(Schema):
    deductible_fen = fields.Nested(
        LevelFenSchema, required=True, metadata={"description": "起付线 per level"}
    )
    ratio_pct = fields.Nested(
        LevelPctSchema, required=True, metadata={"description": "统筹支付比例 per level"}
    )
    retired_extra_pct = pct("Added to ratio_pct for retired employees (at most 100 in all).")
    annual_cap_fen = fen("Yearly cap of the pooled fund for this med_type (年度最高支付限额).")


class SeriousIllnessSchema(Schema):
    threshold_fen = fen("On the year's cumulative inpatient shares (大病保险起付线).")
    ratio_pct = pct()
    annual_cap_fen = fen()


class AssistanceSchema(Schema):
    ratio_pct = pct()
    annual_cap_fen = fen("One cap for outpatient and inpatient together.")


class AssistanceMapSchema(Schema):
    dibao = fields.Nested(AssistanceSchema, metadata={"description": "最低生活保障"})
    tekun = fields.Nested(AssistanceSchema, metadata={"description": "特困供养"})
    low_income = fields.Nested(
        AssistanceSchema, metadata={"description": "低收入; a category not listed gets none"}
    )


class PolicyDocumentSchema(Schema):
    class_b_self_pay_pct = pct("乙类先行自付比例, per line, rounded half up.")
    outpatient = fields.Nested(MedTypePolicySchema, required=True)
    inpatient = fields.Nested(MedTypePolicySchema, required=True)
    serious_illness = fields.Nested(SeriousIllnessSchema, required=True)
    assistance = fields.Nested(AssistanceMapSchema, required=True)


def out(field: fields.Field) -> fields.Field:
    field.required = True
    return field


class PolicyOutSchema(Schema):
    region = out(fields.String(metadata={"pattern": r"^[0-9]{6}$"}))
    insurance_type = out(fields.String(validate=validate.OneOf(("employee", "resident"))))
    year = out(fields.Integer())
    version = out(fields.Integer(validate=validate.Range(min=1)))
    created_at = out(fields.DateTime())
    policy = out(fields.Nested(PolicyDocumentSchema, attribute="document"))


class BenefitsQuerySchema(Schema):
    year = fields.Integer(load_default=None, validate=validate.Range(min=2000, max=2100))
    psn_no = fields.String(load_default=None, validate=validate.Length(min=1, max=32))


class CapLeftSchema(Schema):
    cap_fen = out(fields.Integer())
    paid_fen = out(fields.Integer())
    left_fen = out(fields.Integer())


class BenefitsOutSchema(Schema):
    psn_no = out(fields.String())
    year = out(fields.Integer())
    policy_region = out(fields.String(allow_none=True, metadata={"description": "null: no policy applies"}))
    policy_version = out(fields.Integer(allow_none=True))
    hifp_outpatient_fen = out(fields.Integer())
    hifp_inpatient_fen = out(fields.Integer())
    hifmi_fen = out(fields.Integer())
    maf_fen = out(fields.Integer())
    inpatient_share_fen = out(fields.Integer())
    deductible_outpatient_fen = out(fields.Integer())
    deductible_inpatient_fen = out(fields.Integer())
    settlements = out(fields.Integer())
    caps = out(
        fields.Dict(
            keys=fields.String(),
            values=fields.Nested(CapLeftSchema),
            metadata={"description": "hifp_outpatient, hifp_inpatient, hifmi, maf (when a category applies)"},
        )
    )
