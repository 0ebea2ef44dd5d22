"""Voucher endpoints (issue #3): parse, call a service, return what @blp.response serializes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
from flask import Request, current_app
from webargs import core
from webargs.flaskparser import FlaskParser

from yibao.api import Blueprint, current_claim, current_institution, current_user
from yibao.db import db
from yibao.events import stream as events
from yibao.redis_store import redis_ext

from . import credentials, issuance, subjects, verification
from .keys import KeyRing
from .schemas import (
    IssueQuerySchema,
    IssueRequestSchema,
    JwksSchema,
    NewOfflineCredentialSchema,
    OfflineCredentialListSchema,
    OfflineCredentialRequestSchema,
    RevocationSchema,
    UsagePageSchema,
    UsageQuerySchema,
    VerificationRequestSchema,
    VerificationSchema,
    VoucherSchema,
)
from .usage import USAGE_CODES, usage_for


class _BodyParsedOnce(FlaskParser):
    """Arguments from the JSON body the shell already decoded: yibao.api.check_json_body runs before
    every /api/ view, refuses bodies that are not JSON (UNSUPPORTED_MEDIA_TYPE, MALFORMED_JSON) and
    leaves the decoded body in Flask's cache, so webargs need not decode the bytes a second time.
    Arguments given nothing at all load once per schema (`parse`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._empty_loads: dict[tuple, tuple[ma.Schema, dict]] = {}  # the schema kept: its id stays its own

    def _raw_load_json(self, req: Request) -> Any:
        if not req.get_data(cache=True) or not req.is_json:
            return core.missing
        return req.get_json(cache=True)

    def parse(
        self, argmap: Any, req: Request | None = None, *, location: str | None = None, **kw: Any
    ) -> Any:
        """A schema instance given nothing (no query string, no body: issuance of one's own code)
        loads to the same defaults every time: computed once per schema and location, then copied."""
        req = req if req is not None else self.get_default_request()
        empty = (
            location == "query"
            and not req.query_string
            or location == "json"
            and not req.get_data(cache=True)
        )
        if not (empty and isinstance(argmap, ma.Schema) and not kw.get("validate")):
            return super().parse(argmap, req, location=location, **kw)
        key = (id(argmap), location, kw.get("unknown"))
        if key not in self._empty_loads:
            self._empty_loads[key] = (argmap, super().parse(argmap, req, location=location, **kw))
        return dict(self._empty_loads[key][1])  # flat schemas: a shallow copy is the caller's own


blp = Blueprint("vouchers", __name__, url_prefix="/api/v1", description="E-vouchers (医保码)")
blp.ARGUMENTS_PARSER = _BodyParsedOnce()  # set before the @blp.arguments below use it
jwks_blp = Blueprint("jwks", __name__, url_prefix="", description="Public keys of voucher signatures")

JWKS_MAX_AGE = 60  # scanners refetch at least this often; an unknown kid should also trigger a refetch


def keyring() -> KeyRing:
    return current_app.extensions["yibao.voucher.keyring"]


def _uow_factory(readonly: bool) -> Any:
    return db.uow(readonly=readonly)


@blp.route("/vouchers", methods=["POST"])
@blp.user
@blp.arguments(IssueQuerySchema(), location="query", as_kwargs=True)  # instances: no Schema() per request
@blp.arguments(IssueRequestSchema(), required=False, as_kwargs=True)
@blp.response(201, VoucherSchema)
@blp.problems(*issuance.ISSUE_CODES)
def issue(qr: str | None, on_behalf_of: str | None) -> Any:
    """Issue a short-lived single-use code (for the caller, or a family member via on_behalf_of).

    The body is optional: none, or `{}`, issues the caller's own code.
    """
    # Reads only (a subject row missing for an old person is written through write_uow): autocommit
    # saves the BEGIN/ROLLBACK round trips; the session is the user authentication's (one checkout).
    with db.request_reads() as uow:
        return issuance.issue_voucher(
            uow,
            keyring(),
            person_id=current_user().person_id,
            on_behalf_of=on_behalf_of,
            ttl=current_app.config["VOUCHER_TTL"],
            qr_kind=qr,
            write_uow=_uow_factory,
        )


@blp.route("/vouchers/revocations", methods=["POST"])
@blp.user
@blp.response(200, RevocationSchema)
def revoke() -> Any:
    """Void every outstanding code of the caller at once (lost phone)."""
    with db.uow() as uow:
        revocation = subjects.revoke_all(uow, current_user().person_id)
        uow.commit()
    return revocation


@blp.route("/vouchers/usage", methods=["GET"])
@blp.user
@blp.arguments(UsageQuerySchema, location="query", as_kwargs=True)
@blp.response(200, UsagePageSchema)
@blp.problems(*USAGE_CODES)
def usage(psn_no: str | None, limit: int, cursor: str | None) -> Any:
    """Who scanned the caller's code (or a family member's, with read_usage permission), newest first."""
    with db.uow(readonly=True) as uow:
        return usage_for(
            uow, caller_person_id=current_user().person_id, psn_no=psn_no, limit=limit, cursor=cursor
        )


@blp.route("/verifications", methods=["POST"])
@blp.institution_claiming
@blp.arguments(VerificationRequestSchema())
@blp.response(200, VerificationSchema)
@blp.problems(*verification.VERIFY_CODES)
def verify(args: dict) -> Any:
    """Scan: verify a code for an institution and hand out an ec_token (the ec.query role).

    A code is consumed by its first attempt past the revocation check, even when a later rule
    refuses it; every attempt is audited.
    """
    inst = current_institution()
    qr_content = args.pop("qr_content")
    ctx = verification.ScanContext(
        institution_id=inst.id, institution_region=inst.region, institution_services=inst.services, **args
    )
    # The service commits: its reads and its short write transaction are separate (see its docstring).
    # The nonce of the request is burned with the code's single-use key, in one Redis round trip.
    return verification.verify_voucher(
        _uow_factory, current_claim(), keyring(), ctx, qr_content, notify=_scan_notifier(inst, ctx)
    )


def _scan_notifier(inst: Any, ctx: verification.ScanContext) -> Any:
    """Tell the open page of the code's owner (and of the relative who showed it) how the scan went."""

    def notify(notice: verification.ScanNotice) -> None:
        payload = {
            "at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "institution": inst.name,
            "business_type": ctx.business_type,
            "result": "accepted" if notice.code is None else "refused",
            "code": notice.code,
        }
        for pid in {notice.person_id, notice.actor_person_id} - {None}:
            events.publish(redis_ext.client, pid, "scan", payload)  # never raises

    return notify


@blp.route("/offline-credentials", methods=["POST"])
@blp.user
@blp.arguments(OfflineCredentialRequestSchema)
@blp.response(201, NewOfflineCredentialSchema)
@blp.problems(*credentials.CREATE_CODES)
def create_offline_credential(args: dict) -> Any:
    """A secret for making YO1 codes offline on the caller's activated device (shown once).

    The device's previous credential ends (replaced). Codes are the person's own: a family
    member's code stays online (POST /vouchers with on_behalf_of).
    """
    user = current_user()
    with db.uow() as uow:
        new = credentials.create(
            uow, person_id=user.person_id, session_id=user.session_id, device_id=args["device_id"]
        )
        uow.commit()
    return new, 201, {"Cache-Control": "no-store"}


@blp.route("/offline-credentials", methods=["GET"])
@blp.user
@blp.response(200, OfflineCredentialListSchema)
def list_offline_credentials() -> Any:
    """The caller's offline credentials, newest first (at most 50; never the secret)."""
    with db.uow(readonly=True) as uow:
        return {"items": credentials.list_of(uow, current_user().person_id)}


@blp.route("/offline-credentials/<string:credential_id>", methods=["DELETE"])
@blp.user
@blp.response(204)
@blp.problems(*credentials.END_CODES)
def end_offline_credential(credential_id: str) -> Any:
    """End one of the caller's offline credentials: its codes are VOUCHER_REVOKED from now on."""
    with db.uow() as uow:
        credentials.end_one(uow, person_id=current_user().person_id, credential_id=credential_id)
        uow.commit()


@jwks_blp.route("/.well-known/jwks.json", methods=["GET"])
@jwks_blp.response(200, JwksSchema)
def jwks() -> Any:
    """The public keys that verify vouchers: the signing key and those still verifying."""
    return keyring().jwks(), 200, {"Cache-Control": f"public, max-age={JWKS_MAX_AGE}"}
