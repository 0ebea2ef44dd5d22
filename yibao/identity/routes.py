"""Sandbox identity proofs, activation and session endpoints."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import current_app

from yibao.api import Blueprint, current_user
from yibao.auth import tokens
from yibao.db import db
from yibao.errors import AppError
from yibao.redis_store import redis_ext
from yibao.registry import services as registry
from yibao.registry.schemas import PersonSchema

from . import services
from .providers import SandboxIdentityProvider
from .schemas import (
    ActivationRequestSchema,
    ActivationSchema,
    IdentityProofRequestSchema,
    IdentityProofSchema,
    RefreshRequestSchema,
    TokenPairSchema,
)

blp = Blueprint("identity", __name__, url_prefix="/api/v1", description="Activation and sessions")


def provider() -> Any:
    return current_app.extensions["yibao.identity"]


def _sandbox_only(view: Callable) -> Callable:
    """404 before the body is parsed: a disabled sandbox must not reveal itself through 422s."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        enabled = current_app.config["SANDBOX_IDENTITY_ENABLED"]
        if not enabled or not isinstance(provider(), SandboxIdentityProvider):
            raise AppError("SANDBOX_DISABLED", status=404)
        return view(*args, **kwargs)

    return wrapper


@blp.route("/sandbox/identity-proofs", methods=["POST"])
@_sandbox_only
@blp.arguments(IdentityProofRequestSchema)
@blp.response(201, IdentityProofSchema)
@blp.problems("SANDBOX_DISABLED")
def sandbox_proof(args: dict) -> Any:
    """Sandbox face check: a signed 5-minute proof (404 when the sandbox is disabled)."""
    idp = provider()
    proof = idp.issue(id_number=args["id_number"], name=args["name"], guardian_of=args["guardian_of"])
    return {"identity_proof": proof, "expires_in": idp.ttl}


@blp.route("/activations", methods=["POST"])
@blp.arguments(ActivationRequestSchema)
@blp.response(201, ActivationSchema)
@blp.problems(
    "IDENTITY_PROOF_INVALID",
    "IDENTITY_MISMATCH",
    "PERSON_NOT_FOUND",
    "PERSON_SUSPENDED",
    "REPLAY_STORE_UNAVAILABLE",
)
def activate(args: dict) -> Any:
    """Activate the e-voucher on a device with a real-name identity proof."""
    cfg = current_app.config
    with db.uow() as uow:
        person, pair = services.activate(
            uow,
            provider(),
            redis_ext.client,
            **args,
            secret=cfg["SECRET_KEY"],
            access_ttl=cfg["ACCESS_TOKEN_TTL"],
            refresh_ttl=cfg["REFRESH_TOKEN_TTL"],
        )
        uow.commit()
    return {"psn_no": person.psn_no, **vars(pair)}


@blp.route("/sessions/refresh", methods=["POST"])
@blp.arguments(RefreshRequestSchema)
@blp.response(200, TokenPairSchema)
@blp.problems("REFRESH_TOKEN_INVALID", "REFRESH_TOKEN_REUSED", "PERSON_SUSPENDED")
def refresh(args: dict) -> Any:
    """Exchange a refresh token for a new pair; reusing one ends the whole login."""
    cfg = current_app.config
    with db.uow() as uow:
        pair, error = tokens.rotate_refresh_token(
            uow,
            args["refresh_token"],
            secret=cfg["SECRET_KEY"],
            access_ttl=cfg["ACCESS_TOKEN_TTL"],
            refresh_ttl=cfg["REFRESH_TOKEN_TTL"],
        )
        uow.commit()  # a detected reuse must persist the revocation
    if error:
        raise AppError(error)
    return vars(pair)


@blp.route("/persons/me", methods=["GET"])
@blp.user
@blp.response(200, PersonSchema)
def person_me() -> Any:
    """Who you are, masked: what the app shows above the code (name, insured region) so that a wrong
    insured region is caught before the counter."""
    with db.uow(readonly=True) as uow:
        return registry.person_by_id(uow, current_user().person_id)


@blp.route("/sessions/current", methods=["DELETE"])
@blp.user
@blp.response(204)
@blp.problems("PERSON_SUSPENDED")
def logout() -> Any:
    """End this device's session (its refresh tokens and access tokens)."""
    with db.uow() as uow:
        tokens.end_session(uow, current_user().session_id)
        uow.commit()
