"""Voucher endpoints (issue #3): thin views over voucher.services."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import current_app

from yibao.api import Blueprint, current_institution, current_user
from yibao.db import db
from yibao.errors import AppError
from yibao.redis_store import redis_ext

from . import services
from .keys import KeyRing
from .schemas import (
    IssueQuerySchema,
    IssueRequestSchema,
    RevocationSchema,
    UsagePageSchema,
    UsageQuerySchema,
    VerificationRequestSchema,
    VerificationSchema,
    VoucherSchema,
)

blp = Blueprint("vouchers", __name__, url_prefix="/api/v1", description="E-vouchers (医保码)")
jwks_blp = Blueprint("jwks", __name__, url_prefix="", description="Public keys of voucher signatures")

JWKS_MAX_AGE = 60  # scanners refetch at least this often; an unknown kid should also trigger a refetch


def keyring() -> KeyRing:
    return current_app.extensions["yibao.voucher.keyring"]


def _uow_factory(readonly: bool) -> Any:
    return db.uow(readonly=readonly)


@blp.route("/vouchers", methods=["POST"])
@blp.user
@blp.arguments(IssueQuerySchema, location="query", as_kwargs=True)
@blp.arguments(IssueRequestSchema, as_kwargs=True)
@blp.response(201, VoucherSchema)
def issue(qr: str | None, on_behalf_of: str | None) -> Any:
    """Issue a short-lived single-use code (for the caller, or a family member via on_behalf_of)."""
    # Reads only (a subject row missing for an old person is written through write_uow):
    # autocommit saves the BEGIN/ROLLBACK round trips on PostgreSQL.
    with db.autocommit() as uow:
        issued = services.issue_voucher(
            uow,
            keyring(),
            person_id=current_user().person_id,
            on_behalf_of=on_behalf_of,
            ttl=current_app.config["VOUCHER_TTL"],
            qr_kind=qr,
            write_uow=_uow_factory,
        )
    return vars(issued)


@blp.route("/vouchers/revocations", methods=["POST"])
@blp.user
@blp.response(200, RevocationSchema)
def revoke() -> Any:
    """Void every outstanding code of the caller at once (lost phone)."""
    with db.uow() as uow:
        watermark = services.revoke_outstanding(uow, current_user().person_id)
        uow.commit()
    return {"revoked_before": datetime.fromtimestamp(watermark / 1000, UTC)}


@blp.route("/vouchers/usage", methods=["GET"])
@blp.user
@blp.arguments(UsageQuerySchema, location="query", as_kwargs=True)
@blp.response(200, UsagePageSchema)
def usage(psn_no: str | None, limit: int, cursor: str | None) -> Any:
    """Who scanned the caller's code (or a family member's, with read_usage permission), newest first."""
    with db.uow(readonly=True) as uow:
        items, next_cursor = services.usage_for(
            uow, caller_person_id=current_user().person_id, psn_no=psn_no, limit=limit, cursor=cursor
        )
    return {"items": items, "next_cursor": next_cursor}


@blp.route("/verifications", methods=["POST"])
@blp.institution
@blp.arguments(VerificationRequestSchema)
@blp.response(200, VerificationSchema)
def verify(args: dict) -> Any:
    """Scan: verify a code for an institution and hand out an ec_token (the ec.query role)."""
    inst = current_institution()
    ctx = services.ScanContext(
        institution_id=inst.id,
        institution_region=inst.region,
        institution_services=inst.services,
        business_type=args["business_type"],
        operator_id=args["operator_id"],
        operator_name=args["operator_name"],
        device_id=args["device_id"],
        out_biz_no=args["out_biz_no"],
    )
    # The service commits: its reads and its short write transaction are separate (see its docstring).
    outcome = services.verify_voucher(_uow_factory, redis_ext.client, keyring(), ctx, args["qr_content"])
    if not outcome.accepted:
        raise AppError(outcome.code)  # type: ignore[arg-type]
    return {
        "ec_token": outcome.ec_token,
        "expires_in": outcome.expires_in,
        "business_type": ctx.business_type,
        "person": outcome.person,
    }


@jwks_blp.route("/.well-known/jwks.json", methods=["GET"])
@jwks_blp.response(200)
def jwks() -> Any:
    """The public keys that verify vouchers: the signing key and those still verifying."""
    return keyring().jwks(), 200, {"Cache-Control": f"public, max-age={JWKS_MAX_AGE}"}
