"""Family account endpoints: bindings with consent, their audit trail, mutual-aid filings with consent.

Views are thin: parse, call a service, commit, return the view object the response schema serializes."""

from __future__ import annotations

from typing import Any

from flask import current_app

from yibao.api import Blueprint, current_user
from yibao.db import db
from yibao.redis_store import redis_ext

from . import bindings, mutual_aid
from .schemas import (
    BindingCreateSchema,
    BindingListSchema,
    BindingSchema,
    EventListSchema,
    MutualAidFilingCreateSchema,
    MutualAidFilingListSchema,
    MutualAidFilingSchema,
)

blp = Blueprint("family", __name__, url_prefix="/api/v1/family", description="Family accounts (亲情账户)")


@blp.route("/bindings", methods=["POST"])
@blp.user
@blp.arguments(BindingCreateSchema)
@blp.problems(
    "RELATIONSHIP_NOT_ALLOWED",
    "MEMBER_NOT_FOUND",
    "SELF_NOT_ALLOWED",
    "BINDING_EXISTS",
    "FAMILY_LIMIT_REACHED",
    "GUARDIAN_PROOF_NOT_APPLICABLE",
    "GUARDIAN_PROOF_REQUIRED",
    "GUARDIAN_PROOF_INVALID",
    "GUARDIAN_PROOF_MISMATCH",
)
@blp.response(201, BindingSchema)
def create_binding(args: dict) -> Any:
    """Bind a relative: pending their approval if over 16, active at once with a guardian proof."""
    with db.uow() as uow:
        view = bindings.create_binding(
            uow,
            current_app.extensions["yibao.identity"],
            redis_ext.client,
            binder_person_id=current_user().person_id,
            **args,
        )
        uow.commit()
        return view


@blp.route("/bindings", methods=["GET"])
@blp.user
@blp.response(200, BindingListSchema)
def list_bindings() -> Any:
    """Bindings where you are the binder or the member (expiries and 17th birthdays applied)."""
    with db.uow() as uow:  # a write: due transitions are recorded before they are shown
        views = bindings.list_bindings(uow, person_id=current_user().person_id)
        uow.commit()
        return {"bindings": views}


@blp.route("/bindings/<binding_id>", methods=["GET"])
@blp.user
@blp.problems("BINDING_NOT_FOUND")
@blp.response(200, BindingSchema)
def get_binding(binding_id: str) -> Any:
    """One of your bindings."""
    with db.uow() as uow:
        view = bindings.get_binding(uow, binding_no=binding_id, person_id=current_user().person_id)
        uow.commit()
        return view


@blp.route("/bindings/<binding_id>/approve", methods=["POST"])
@blp.user
@blp.problems("BINDING_NOT_FOUND", "NOT_PERMITTED", "BINDING_NOT_PENDING")
@blp.response(200, BindingSchema)
def approve_binding(binding_id: str) -> Any:
    """The member approves a pending binding."""
    with db.uow() as uow:
        view = bindings.approve_binding(uow, binding_no=binding_id, person_id=current_user().person_id)
        uow.commit()
        return view


@blp.route("/bindings/<binding_id>/decline", methods=["POST"])
@blp.user
@blp.problems("BINDING_NOT_FOUND", "NOT_PERMITTED", "BINDING_NOT_PENDING")
@blp.response(200, BindingSchema)
def decline_binding(binding_id: str) -> Any:
    """The member declines a pending binding."""
    with db.uow() as uow:
        view = bindings.decline_binding(uow, binding_no=binding_id, person_id=current_user().person_id)
        uow.commit()
        return view


@blp.route("/bindings/<binding_id>", methods=["DELETE"])
@blp.user
@blp.problems("BINDING_NOT_FOUND")
@blp.response(200, BindingSchema)
def end_binding(binding_id: str) -> Any:
    """Either side ends the binding (repeating it changes nothing)."""
    with db.uow() as uow:
        view = bindings.end_binding(uow, binding_no=binding_id, person_id=current_user().person_id)
        uow.commit()
        return view


@blp.route("/bindings/<binding_id>/events", methods=["GET"])
@blp.user
@blp.problems("BINDING_NOT_FOUND")
@blp.response(200, EventListSchema)
def binding_events(binding_id: str) -> Any:
    """The audit trail of one binding, for either side."""
    with db.uow() as uow:
        events = bindings.binding_events(uow, person_id=current_user().person_id, binding_no=binding_id)
        uow.commit()
        return {"events": events}


@blp.route("/events", methods=["GET"])
@blp.user
@blp.response(200, EventListSchema)
def all_events() -> Any:
    """The audit trail of every binding where you are binder or member."""
    with db.uow() as uow:
        events = bindings.binding_events(uow, person_id=current_user().person_id)
        uow.commit()
        return {"events": events}


@blp.route("/mutual-aid-filings", methods=["POST"])
@blp.user
@blp.arguments(MutualAidFilingCreateSchema)
@blp.problems(
    "RELATIONSHIP_NOT_ALLOWED",
    "HOLDER_HAS_NO_PERSONAL_ACCOUNT",
    "SELF_NOT_ALLOWED",
    "MUTUAL_AID_FILING_EXISTS",
)
@blp.response(201, MutualAidFilingSchema)
def create_filing(args: dict) -> Any:
    """Ask a close relative to accept drawing on your personal account (家庭共济).

    The filing is pending until the member approves it from their own account (7 days); until then
    it shows only the psn_no you typed, and the answer is the same whether or not that psn_no exists.
    """
    with db.uow() as uow:
        view = mutual_aid.create_mutual_aid_filing(uow, holder_person_id=current_user().person_id, **args)
        uow.commit()
        return view


@blp.route("/mutual-aid-filings", methods=["GET"])
@blp.user
@blp.response(200, MutualAidFilingListSchema)
def list_filings() -> Any:
    """Filings where you are the holder or the member."""
    with db.uow(readonly=True) as uow:
        return {"filings": mutual_aid.list_mutual_aid_filings(uow, person_id=current_user().person_id)}


@blp.route("/mutual-aid-filings/<filing_id>", methods=["DELETE"])
@blp.user
@blp.problems("MUTUAL_AID_FILING_NOT_FOUND")
@blp.response(200, MutualAidFilingSchema)
def withdraw_filing(filing_id: str) -> Any:
    """The holder withdraws the offer, or the member their consent; it stops future payments at once."""
    with db.uow() as uow:
        view = mutual_aid.withdraw_mutual_aid_filing(
            uow, filing_no=filing_id, person_id=current_user().person_id
        )
        uow.commit()
        return view


@blp.route("/mutual-aid-filings/<filing_id>/approve", methods=["POST"])
@blp.user
@blp.problems("MUTUAL_AID_FILING_NOT_FOUND", "MUTUAL_AID_FILING_NOT_PENDING")
@blp.response(200, MutualAidFilingSchema)
def approve_filing(filing_id: str) -> Any:
    """The member approves a pending filing: the holder's account pays for them from now on.

    Only the member may; for anyone else the filing does not exist (404).
    """
    with db.uow() as uow:
        view = mutual_aid.approve_mutual_aid_filing(
            uow, filing_no=filing_id, person_id=current_user().person_id
        )
        uow.commit()
        return view


@blp.route("/mutual-aid-filings/<filing_id>/decline", methods=["POST"])
@blp.user
@blp.problems("MUTUAL_AID_FILING_NOT_FOUND", "MUTUAL_AID_FILING_NOT_PENDING")
@blp.response(200, MutualAidFilingSchema)
def decline_filing(filing_id: str) -> Any:
    """The member declines a pending filing (only the member; anyone else gets 404)."""
    with db.uow() as uow:
        view = mutual_aid.decline_mutual_aid_filing(
            uow, filing_no=filing_id, person_id=current_user().person_id
        )
        uow.commit()
        return view
