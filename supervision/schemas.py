"""Request and response schemas of supervision; the rule definitions' validation (API and CLI alike)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from yibao.api import Schema
from yibao.db import MAX_ID
from yibao.fields import QueryBoolean, StrictBoolean

from .models import ACTIONS, KINDS, STAGES

# The shape of a code a rule may name: exactly what an order line may carry, a pharmacy item's
# drug_code (payments.schemas.ItemIn: a string of 1-64 characters) and a hospital item's item_code
# (the same rule). Rules compare codes exactly, so any code an order can carry can be supervised and a
# code no order can carry (empty, longer than 64, not a string) is refused.
CODE_MAX = 64
DRUG_CODE = fields.String(required=True, validate=validate.Length(min=1, max=CODE_MAX))
MAX_WINDOW_DAYS = 366
MAX_WINDOW_MINUTES = 7 * 24 * 60


def _count(maximum: int, description: str) -> fields.Integer:
    return fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(min=1, max=maximum),
        metadata={"description": description},
    )


class QuantityLimitParams(Schema):
    drug_code = DRUG_CODE
    max_quantity = _count(1_000_000, "Units allowed in the window; one more is a violation.")
    window_days = _count(MAX_WINDOW_DAYS, "Rolling window ending now, in days of 24 hours.")


class RepeatPurchaseParams(Schema):
    drug_code = DRUG_CODE
    window_days = _count(MAX_WINDOW_DAYS, "Rolling window ending now, in days of 24 hours.")
    max_institutions = _count(1000, "Distinct institutions allowed in the window, this one included.")


class IdentityVelocityParams(Schema):
    window_minutes = _count(MAX_WINDOW_MINUTES, "Rolling window ending now, in minutes.")
    max_prefectures = _count(1000, "Distinct prefectures allowed in the window, this scan included.")


PARAMS: dict[str, type[Schema]] = {
    "quantity_limit": QuantityLimitParams,
    "repeat_purchase": RepeatPurchaseParams,
    "identity_velocity": IdentityVelocityParams,
}
_PARAMS_DOC = (
    "By kind (every key required, no other key): quantity_limit {drug_code, max_quantity, window_days}; "
    "repeat_purchase {drug_code, window_days, max_institutions}; identity_velocity {window_minutes, "
    f"max_prefectures}}. drug_code: 1-{CODE_MAX} characters (an order line's drug_code or item_code); "
    f"window_days 1-{MAX_WINDOW_DAYS}; window_minutes 1-{MAX_WINDOW_MINUTES}; maxima at least 1."
)


class SupervisionRuleIn(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    params = fields.Dict(keys=fields.String(), required=True, metadata={"description": _PARAMS_DOC})
    action = fields.String(required=True, validate=validate.OneOf(ACTIONS))
    description = fields.String(load_default=None, validate=validate.Length(min=1, max=256))

    @ma.validates_schema(skip_on_field_errors=True)
    def _params_of_kind(self, data: dict[str, Any], **_: Any) -> None:
        errors = PARAMS[data["kind"]]().validate(data["params"])
        if errors:
            raise ma.ValidationError({"params": errors})

    @ma.post_load
    def _load_params(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        data["params"] = PARAMS[data["kind"]]().load(data["params"])
        return data


class SupervisionRulePatch(Schema):
    enabled = StrictBoolean(required=True)


class SupervisionOperatorHeaders(ma.Schema):
    """Who made the change, for the audit trail (the operator token itself names nobody)."""

    class Meta:
        unknown = ma.EXCLUDE

    operator = fields.String(
        data_key="X-Operator-Id",
        load_default=None,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "The operator's own id, recorded in the rule's audit trail."},
    )


class SupervisionRuleOut(Schema):
    rule_id = fields.String()
    kind = fields.String()
    params = fields.Dict()
    action = fields.String()
    description = fields.String(allow_none=True)
    enabled = fields.Boolean()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class SupervisionRuleListQuery(Schema):
    kind = fields.String(load_default=None, validate=validate.OneOf(KINDS))
    enabled = QueryBoolean(load_default=None)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.Integer(load_default=None, validate=validate.Range(min=1, max=2**31 - 1))


class SupervisionRulePage(Schema):
    items = fields.List(fields.Nested(SupervisionRuleOut))
    next_cursor = fields.Integer(allow_none=True)


class SupervisionRuleChangeOut(Schema):
    change = fields.String(metadata={"description": "created | enabled | disabled"})
    operator = fields.String()
    at = fields.DateTime()
    before = fields.Dict(allow_none=True)
    after = fields.Dict()


class SupervisionRuleChangeList(Schema):
    items = fields.List(fields.Nested(SupervisionRuleChangeOut))


class AlertPerson(Schema):
    psn_no = fields.String()
    name_masked = fields.String()


class AlertInstitution(Schema):
    org_id = fields.String()
    name = fields.String()


class SupervisionAlertOut(Schema):
    alert_id = fields.Integer()
    rule_id = fields.String()
    kind = fields.String()
    action = fields.String(metadata={"description": "block | warn"})
    stage = fields.String(validate=validate.OneOf(STAGES))
    subject_ref = fields.String(metadata={"description": "The payment order or scan checked."})
    person = fields.Nested(AlertPerson)
    institution = fields.Nested(AlertInstitution)
    evidence = fields.Dict()
    created_at = fields.DateTime()


class SupervisionAlertQuery(Schema):
    rule_id = fields.String(load_default=None, validate=validate.Length(min=1, max=32))
    institution = fields.String(
        load_default=None, validate=validate.Length(min=1, max=32), metadata={"description": "org_id"}
    )
    since = fields.AwareDateTime(load_default=None, metadata={"description": "Alerts at or after this."})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_ID))


class SupervisionAlertPage(Schema):
    items = fields.List(fields.Nested(SupervisionAlertOut))
    next_cursor = fields.Integer(allow_none=True)


class SupervisionMyAlertOut(Schema):
    alert_id = fields.Integer()
    kind = fields.String(metadata={"description": "Why: the rule's kind (its evidence says what counted)."})
    action = fields.String(metadata={"description": "block (refused) | warn (let through, recorded)"})
    stage = fields.String()
    institution = fields.Nested(AlertInstitution, metadata={"description": "Who checked."})
    evidence = fields.Dict()
    created_at = fields.DateTime(metadata={"description": "When."})


class SupervisionMyAlertQuery(Schema):
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = fields.Integer(
        load_default=None,
        validate=validate.Range(min=1, max=MAX_ID),
        metadata={"description": "next_cursor of the previous page (newest first)."},
    )


class SupervisionMyAlertPage(Schema):
    items = fields.List(fields.Nested(SupervisionMyAlertOut))
    next_cursor = fields.Integer(allow_none=True)


class SupervisionFindingOut(Schema):
    """A rule an order or scan broke, as the counter sees it: in `warnings` (warn) or `violations`
    (block, 422 SUPERVISION_BLOCKED)."""

    rule_id = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    evidence = fields.Dict(
        required=True, metadata={"description": "What was counted and the window (masked)."}
    )
