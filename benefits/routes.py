"""Operator endpoints: /api/v1/admin/benefit-policies/{region}/{insurance_type}/{year}."""

from __future__ import annotations

from typing import Any

from yibao.api import Blueprint
from yibao.db import db
from yibao.errors import AppError
from yibao.registry.models import INSURANCE_TYPES
from yibao.registry.validators import is_valid_region

from . import policies
from .schemas import PolicyDocumentSchema, PolicyOutSchema

blp = Blueprint(
    "benefit_policies", __name__, url_prefix="/api/v1/admin", description="Benefit policies (operators)"
)

PATH = "/benefit-policies/<region>/<insurance_type>/<year>"


def _key(region: str, insurance_type: str, year: str) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    if not is_valid_region(region):
        errors["region"] = ["Unknown administrative region code (REGION_UNKNOWN)."]
    if insurance_type not in INSURANCE_TYPES:
        errors["insurance_type"] = ["Must be one of: employee, resident."]
    if not (year.isascii() and year.isdigit() and len(year) == 4 and 2000 <= int(year) <= 2100):
        errors["year"] = ["A calendar year from 2000 to 2100."]
    if errors:
        raise AppError("VALIDATION_FAILED", errors=errors)
    return {"region": region, "insurance_type": insurance_type, "year": int(year)}


@blp.route(PATH, methods=["PUT"])
@blp.admin
@blp.arguments(PolicyDocumentSchema)
@blp.response(200, PolicyOutSchema)
def put_policy(args: dict, region: str, insurance_type: str, year: str) -> Any:
    """Set the benefit policy: replaces it whole, as a new version (settlements keep theirs)."""
    key = _key(region, insurance_type, year)
    with db.uow() as uow:
        row = policies.put_policy(uow, document=args, **key)
        uow.commit()
        return row


@blp.route(PATH, methods=["GET"])
@blp.admin
@blp.response(200, PolicyOutSchema)
@blp.problems("BENEFIT_POLICY_NOT_FOUND")
def get_policy(region: str, insurance_type: str, year: str) -> Any:
    """The current version of exactly this region's policy (no ancestor lookup here)."""
    key = _key(region, insurance_type, year)
    with db.uow(readonly=True) as uow:
        return policies.get_policy(uow, **key)
