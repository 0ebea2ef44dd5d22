"""Issuance: sign a short-lived single-use code for the caller, or for a family member they show it for."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from family_accounts import acting as family
from yibao.db import UnitOfWork
from yibao.errors import AppError
from yibao.registry import services as registry
from yibao.sqlite_writer import UowFactory

from . import qr, queries
from . import token as tk
from .claims import MAX_TTL, new_jti
from .keys import KeyRing
from .subjects import subject_of, subject_or_create

# The codes issue_voucher answers (documented on POST /vouchers).
ISSUE_CODES = ("PERSON_SUSPENDED", "NOT_ACTIVATED", "NOT_PERMITTED", "BINDING_NOT_ACTIVE")


@dataclass(frozen=True)
class IssuedVoucher:
    token: str
    qr_content: str
    expires_at: datetime
    expires_in: int
    qr: str | None = None


def issue_voucher(
    uow: UnitOfWork,
    keyring: KeyRing,
    *,
    person_id: int,
    on_behalf_of: str | None,
    ttl: int,
    qr_kind: str | None,
    write_uow: UowFactory,
) -> IssuedVoucher:
    """Sign a short-lived code for the caller, or for a family member the caller may show it for.

    The code carries iss, aud, sub, iat, exp = iat + ttl (ttl capped at MAX_TTL) and jti, plus
    act = {sub of the caller} for a family code; never nbf.

    Raises:
        PERSON_SUSPENDED: the caller, or the member, is suspended.
        NOT_ACTIVATED: the caller's e-voucher activation was undone.
        NOT_PERMITTED: no live binding lets the caller show the member's code.
        BINDING_NOT_ACTIVE: the binding is still pending.
    """
    # One query for the person and their subject: issuance is on the hot path of every app open.
    actor = queries.PERSON_WITH_SUBJECT.first(uow, {"person_id": person_id})
    if actor is None or actor.status != "active":
        raise AppError("PERSON_SUSPENDED")
    if actor.activated_at is None:
        raise AppError("NOT_ACTIVATED")
    sub = actor.sub
    act = None
    if on_behalf_of is not None and on_behalf_of != actor.psn_no:
        member_id = family.acting_permission(
            uow, actor_person_id=actor.id, member_psn_no=on_behalf_of, action="show_voucher"
        )
        member = registry.person_by_id(uow, member_id)
        if member is None or member.status != "active":
            raise AppError("PERSON_SUSPENDED")
        act = sub or subject_or_create(uow, actor.id, write_uow).sub
        sub = (subject_of(uow, member.id) or subject_or_create(uow, member.id, write_uow)).sub
    elif sub is None:
        sub = subject_or_create(uow, actor.id, write_uow).sub
    ttl = max(1, min(ttl, MAX_TTL))
    now_ms = time.time_ns() // 1_000_000
    iat = now_ms // 1000
    claims: dict[str, Any] = {
        "iss": tk.ISSUER,
        "aud": tk.AUDIENCE,
        "sub": sub,
        "iat": iat,
        "exp": iat + ttl,
        "jti": new_jti(now_ms % 1000),
    }
    if act is not None:
        claims["act"] = {"sub": act}  # RFC 8693: who is presenting the member's code
    parts = _signed(keyring, claims)
    content = parts.qr_content
    image = qr.data_uri(content, qr_kind) if qr_kind else None
    expires_in = max(0, claims["exp"] - int(time.time()))
    return IssuedVoucher(
        parts.compact, content, datetime.fromtimestamp(claims["exp"], UTC), expires_in, image
    )


def _signed(keyring: KeyRing, claims: dict[str, Any]) -> tk.Parts:
    """The compact JWS parts of these claims, signed with the current signing key."""
    key = keyring.signing_key()
    header_raw = tk.dumps({"alg": tk.ALG, "kid": key.kid, "typ": tk.TYP})
    payload_raw = tk.dumps(claims)
    unsigned = tk.Parts(header_raw, payload_raw, b"")
    assert key.private is not None
    return tk.Parts(header_raw, payload_raw, key.private.sign(unsigned.signing_input))
