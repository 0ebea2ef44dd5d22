"""Family account endpoints (issue #5): bindings with consent, their audit trail, mutual-aid filings."""

from __future__ import annotations

from typing import Any

from flask import current_app

from yibao.api import Blueprint, current_user
from yibao.db import db
from yibao.redis_store import redis_ext

from . import services
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
@blp.response(201, BindingSchema)
def create_binding(args: dict) -> Any:
    """Bind a relative: pending their approval if over 16, active at once with a guardian proof."""
    with db.uow() as uow:
        view = services.create_binding(
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
        views = services.list_bindings(uow, person_id=current_user().person_id)
        uow.commit()
        return {"bindings": views}


@blp.route("/bindings/<binding_id>", methods=["GET"])
@blp.user
@blp.response(200, BindingSchema)
def get_binding(binding_id: str) -> Any:
    """One of your bindings."""
    with db.uow() as uow:
        view = services.get_binding(uow, binding_no=binding_id, person_id=current_user().person_id)
        uow.commit()
        return view


@blp.route("/bindings/<binding_id>/approve", methods=["POST"])
@blp.user
@blp.response(200, BindingSchema)
def approve_binding(binding_id: str) -> Any:
    """The member approves a pending binding."""
    with db.uow() as uow:
        view = services.approve_binding(uow, binding_no=binding_id, person_id=current_user().person_id)
        uow.commit()
        return view


@blp.route("/bindings/<binding_id>/decline", methods=["POST"])
@blp.user
@blp.response(200, BindingSchema)
def decline_binding(binding_id: str) -> Any:
    """The member declines a pending binding."""
    with db.uow() as uow:
        view = services.decline_binding(uow, binding_no=binding_id, person_id=current_user().person_id)
        uow.commit()
        return view


@blp.route("/bindings/<binding_id>", methods=["DELETE"])
@blp.user
@blp.response(200, BindingSchema)
def end_binding(binding_id: str) -> Any:
    """Either side ends the binding (repeating it changes nothing)."""
    with db.uow() as uow:
        view = services.end_binding(uow, binding_no=binding_id, person_id=current_user().person_id)
        uow.commit()
        return view


@blp.route("/bindings/<binding_id>/events", methods=["GET"])
@blp.user
@blp.response(200, EventListSchema)
def binding_events(binding_id: str) -> Any:
    """The audit trail of one binding, for either side."""
    with db.uow() as uow:
        events = services.binding_events(uow, person_id=current_user().person_id, binding_no=binding_id)
        uow.commit()
        return {"events": events}


@blp.route("/events", methods=["GET"])
@blp.user
@blp.response(200, EventListSchema)
def all_events() -> Any:
    """The audit trail of every binding where you are binder or member."""
    with db.uow() as uow:
        events = services.binding_events(uow, person_id=current_user().person_id)
        uow.commit()
        return {"events": events}


@blp.route("/mutual-aid-filings", methods=["POST"])
@blp.user
@blp.arguments(MutualAidFilingCreateSchema)
@blp.response(201, MutualAidFilingSchema)
def create_filing(args: dict) -> Any:
    """File a close relative who may draw on your personal account (家庭共济)."""
    with db.uow() as uow:
        view = services.create_mutual_aid_filing(uow, holder_person_id=current_user().person_id, **args)
        uow.commit()
        return view


@blp.route("/mutual-aid-filings", methods=["GET"])
@blp.user
@blp.response(200, MutualAidFilingListSchema)
def list_filings() -> Any:
    """Filings where you are the holder or the member."""
    with db.uow(readonly=True) as uow:
        return {"filings": services.list_mutual_aid_filings(uow, person_id=current_user().person_id)}


@blp.route("/mutual-aid-filings/<filing_id>", methods=["DELETE"])
@blp.user
@blp.response(200, MutualAidFilingSchema)
def withdraw_filing(filing_id: str) -> Any:
    """The holder withdraws a filing; it stops future payments at once."""
    with db.uow() as uow:
        view = services.withdraw_mutual_aid_filing(
            uow, filing_no=filing_id, person_id=current_user().person_id
        )
        uow.commit()
        return view
