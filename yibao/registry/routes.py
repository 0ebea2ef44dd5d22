"""Operator endpoints: /api/v1/admin/..."""

from __future__ import annotations

from typing import Any

from yibao.api import Blueprint, current_institution
from yibao.db import db
from yibao.errors import AppError

from . import services
from .schemas import (
    FilingCreateSchema,
    FilingSchema,
    InstitutionCreateSchema,
    InstitutionCredentialsSchema,
    InstitutionListQuerySchema,
    InstitutionPageSchema,
    InstitutionSchema,
    InstitutionUpdateSchema,
    PersonCreatedSchema,
    PersonCreateSchema,
    PersonListQuerySchema,
    PersonLookupSchema,
    PersonPageSchema,
    PersonSchema,
    PersonUpdateSchema,
)

blp = Blueprint("admin", __name__, url_prefix="/api/v1/admin", description="Operators (the insurance agency)")


@blp.route("/persons", methods=["POST"])
@blp.admin
@blp.arguments(PersonCreateSchema)
@blp.response(201, PersonCreatedSchema)
@blp.problems("PERSON_EXISTS")
def create_person(args: dict) -> Any:
    """Register an insured person."""
    with db.uow() as uow:
        person = services.create_person(uow, **args)
        uow.commit()
        return {"psn_no": person.psn_no}


@blp.route("/persons", methods=["GET"])
@blp.admin
@blp.arguments(PersonListQuerySchema, location="query")
@blp.response(200, PersonPageSchema)
def list_persons(args: dict) -> Any:
    """Registered persons, masked, in registration order (?cursor= the previous page's next_cursor)."""
    with db.uow(readonly=True) as uow:
        items, next_cursor = services.list_persons(uow, **args)
        return {"items": items, "next_cursor": next_cursor}


@blp.route("/persons/lookups", methods=["POST"])
@blp.admin
@blp.arguments(PersonLookupSchema)
@blp.response(200, PersonSchema)
@blp.problems("PERSON_NOT_FOUND")
def lookup_person(args: dict) -> Any:
    """Find a person by ID number (in the body: ID numbers never go into URLs or logs)."""
    with db.uow(readonly=True) as uow:
        person = services.person_by_id_number(uow, args["id_number"])
        if person is None:
            raise AppError("PERSON_NOT_FOUND")
        return person


@blp.route("/persons/<psn_no>", methods=["GET"])
@blp.admin
@blp.response(200, PersonSchema)
@blp.problems("PERSON_NOT_FOUND")
def get_person(psn_no: str) -> Any:
    """Show a person, masked."""
    with db.uow(readonly=True) as uow:
        return services.require_person(uow, psn_no)


@blp.route("/persons/<psn_no>", methods=["PATCH"])
@blp.admin
@blp.arguments(PersonUpdateSchema)
@blp.response(200, PersonSchema)
@blp.problems("PERSON_NOT_FOUND")
def update_person(args: dict, psn_no: str) -> Any:
    """Suspend or reactivate a person (suspension revokes their outstanding codes), or change `retired`
    (employees only) or `assistance_category`; the values at `pay` time apply."""
    with db.uow() as uow:
        person = services.update_person(uow, psn_no, **args)
        uow.commit()
        return person


@blp.route("/persons/<psn_no>/cross-region-filings", methods=["POST"])
@blp.admin
@blp.arguments(FilingCreateSchema)
@blp.response(201, FilingSchema)
@blp.problems("PERSON_NOT_FOUND")
def create_filing(args: dict, psn_no: str) -> Any:
    """Record a cross-region filing (异地就医备案)."""
    with db.uow() as uow:
        filing = services.add_cross_region_filing(uow, psn_no, **args)
        uow.commit()
        return filing


@blp.route("/institutions", methods=["POST"])
@blp.admin
@blp.arguments(InstitutionCreateSchema)
@blp.response(201, InstitutionCredentialsSchema)
def create_institution(args: dict) -> Any:
    """Designate an institution; the secret is in this response only."""
    with db.uow() as uow:
        _, creds = services.create_institution(uow, **args)
        uow.commit()
        return creds


@blp.route("/institutions", methods=["GET"])
@blp.admin
@blp.arguments(InstitutionListQuerySchema, location="query")
@blp.response(200, InstitutionPageSchema)
def list_institutions(args: dict) -> Any:
    """Designated institutions in registration order (?cursor= the previous page's next_cursor)."""
    with db.uow(readonly=True) as uow:
        items, next_cursor = services.list_institutions(uow, **args)
        return {"items": items, "next_cursor": next_cursor}


@blp.route("/institutions/<org_id>", methods=["GET"])
@blp.admin
@blp.response(200, InstitutionSchema)
@blp.problems("INSTITUTION_NOT_FOUND")
def get_institution(org_id: str) -> Any:
    """Show an institution (never its secret)."""
    with db.uow(readonly=True) as uow:
        inst = services.institution_by_org_id(uow, org_id)
        if inst is None:
            raise AppError("INSTITUTION_NOT_FOUND")
        return inst


@blp.route("/institutions/<org_id>", methods=["PATCH"])
@blp.admin
@blp.arguments(InstitutionUpdateSchema)
@blp.response(200, InstitutionSchema)
@blp.problems("INSTITUTION_NOT_FOUND")
def update_institution(args: dict, org_id: str) -> Any:
    """Disable or re-enable an institution, or change its designated services (at once)."""
    with db.uow() as uow:
        inst = services.update_institution(uow, org_id, **args)
        uow.commit()
        return inst


@blp.route("/institutions/<org_id>/secret-rotations", methods=["POST"])
@blp.admin
@blp.response(201, InstitutionCredentialsSchema)
@blp.problems("INSTITUTION_NOT_FOUND")
def rotate_secret(org_id: str) -> Any:
    """Issue a new key id and secret; the old ones stop working at once."""
    with db.uow() as uow:
        creds = services.rotate_institution_secret(uow, org_id)
        uow.commit()
        return creds


# Institutions see their own registration: a signed no-op that lets an integrator test its signing.
inst_blp = Blueprint("institutions", __name__, url_prefix="/api/v1", description="Institutions")


@inst_blp.route("/institutions/me", methods=["GET"])
@inst_blp.institution
@inst_blp.response(200, InstitutionSchema)
@inst_blp.problems("INSTITUTION_NOT_FOUND")
def institution_me() -> Any:
    """The calling institution as registered (check your request signing with this)."""
    with db.uow(readonly=True) as uow:
        inst = services.institution_by_org_id(uow, current_institution().org_id)
        if inst is None:
            raise AppError("INSTITUTION_NOT_FOUND")
        return inst
