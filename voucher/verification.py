"""Verification at institutions (the ec.query role): the order of the checks, single use in Redis and
in a durable row, the decision, and the write of the outcome with its audit row.

The order is the README's table "Verification order and codes"; the first failing rule answers.
A code is consumed by its first attempt that gets past the revocation check, even when a later rule
refuses it (as with payment codes): the user refreshes. Offline YO1 codes (voucher/offline.py) take
their own checks up to single use (shape, credential, MAC, step window), then the same path. Fund
supervision's identity rules come last, in the write (they lock the person's supervision row and count
accepted scans): a block is SUPERVISION_BLOCKED, audited like any refusal, its alerts committed with
the audit row.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from family_accounts import acting as family
from supervision import checks as supervision
from yibao.db import UnitOfWork, utcnow
from yibao.errors import AppError
from yibao.registry import services as registry
from yibao.registry.models import has_personal_account
from yibao.sqlite_writer import ReadThenWrite, UowFactory

from . import ec_tokens, offline, queries
from .claims import LEEWAY, checked_claims, issued_ms
from .errors import Refusal
from .keys import KeyRing

PHARMACY_PURCHASE = "02121"

# Every code verify_voucher answers, in the order of the checks (documented on POST /verifications).
VERIFY_CODES = (
    "INSTITUTION_NOT_DESIGNATED",
    "VOUCHER_MALFORMED",
    "VOUCHER_SIGNATURE_INVALID",
    "VOUCHER_EXPIRED",
    "VOUCHER_REVOKED",
    "VOUCHER_ALREADY_USED",
    "REPLAY_STORE_UNAVAILABLE",
    "PERSON_SUSPENDED",
    "REGION_NOT_COVERED",
    "SCOPE_NOT_ALLOWED",
    "SUPERVISION_BLOCKED",
)


class SingleUse(Protocol):
    """The replay store as the shell hands it to a signed call (yibao.api.current_claim): the
    request's nonce is burned with the first key claimed, in one round trip."""

    def claim(self, key: str, ttl: int) -> bool: ...  # SET NX key: True when it was free

    def settle(self) -> None: ...  # burn the request's nonce now if no claim did


@dataclass(frozen=True)
class ScanContext:
    """Who scans, where and why: the contract fields of POST /verifications."""

    institution_id: int
    institution_region: str
    institution_services: tuple[str, ...]
    business_type: str
    operator_id: str
    operator_name: str
    device_id: str
    out_biz_no: str


@dataclass(frozen=True)
class Verification:
    """An accepted scan: the ec_token for the institution and the masked person."""

    ec_token: str
    expires_in: int
    business_type: str
    person: dict[str, Any]
    # the `warn` identity rules of supervision this scan broke (alerts): [{rule_id, kind, evidence}]
    warnings: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ScanNotice:
    """What the scanned person's page is told after the commit (yibao.events): whose code, who
    showed it, and the refusal code (None when accepted)."""

    person_id: int
    actor_person_id: int | None
    code: str | None


@dataclass
class _Decision:
    code: str | None = None
    person: Any = None  # the columns of queries.PERSON_BY_SUB (signed) or offline.ScannedPerson (YO1)
    person_id: int | None = None
    actor_person_id: int | None = None
    consumed: tuple[str, str, int] | None = None  # (sub, jti, exp) once Redis took the code
    jti: str | None = None
    blocked: supervision.SupervisionBlocked | None = None  # the refusal, with its violations
    warnings: list[dict[str, Any]] = field(default_factory=list)  # the warn rules broken, when accepted
    kind: str = "signed"  # | "offline" (a YO1 code)
    credential_id: str | None = None
    rules_version: int | None = None  # supervision's, read with the person (first statement)


def verify_voucher(
    uow_factory: UowFactory,
    single_use: SingleUse,
    keyring: KeyRing,
    ctx: ScanContext,
    qr_content: Any,
    *,
    now: float | None = None,
    notify: Callable[[ScanNotice], None] | None = None,
) -> Verification:
    """Verify a scanned code; commit the durable consumption, the ec_token and the audit row together.

    The checks read only (on SQLite in a read-only transaction of their own, so the write lock is
    held for the writes alone: yibao/sqlite_writer.py); supervision's identity rules run in the
    write, as they lock the person's supervision row and count accepted scans (the rules from the
    worker's cache, at the version the first read took with the person: no statement when there are
    none). Every attempt is audited and committed before a refusal is
    raised.

    Raises:
        INSTITUTION_NOT_DESIGNATED, VOUCHER_MALFORMED, VOUCHER_SIGNATURE_INVALID, VOUCHER_EXPIRED,
        VOUCHER_REVOKED, VOUCHER_ALREADY_USED, PERSON_SUSPENDED, REGION_NOT_COVERED,
        SCOPE_NOT_ALLOWED: as AppError, in the order of `decide`; then SUPERVISION_BLOCKED (with
        `violations`) from the identity rules, checked in the write.
        RedisUnavailable (answered REPLAY_STORE_UNAVAILABLE): the replay store is down; nothing is
            written and the code is not consumed.
        Whatever `single_use` raises when the request's nonce is burned (a replay: nothing written).
    """
    now = time.time() if now is None else now
    with ReadThenWrite(uow_factory) as rw:
        with rw.reading() as ruow:
            d = decide(ruow, single_use, keyring, ctx, qr_content, now)
        single_use.settle()  # before any write: a replayed request writes nothing
        with rw.writing() as wuow:
            answer = _write_outcome(wuow, d, ctx)
            wuow.commit()
    if notify is not None and d.person_id is not None:  # after the commit: the person's open page
        refusal = None if answer is not None else (d.code or "SUPERVISION_BLOCKED")
        notify(ScanNotice(d.person_id, d.actor_person_id, refusal))
    if answer is None:
        if d.blocked is not None:
            raise d.blocked
        raise AppError(d.code)  # type: ignore[arg-type]
    return answer


def decide(
    uow: UnitOfWork, single_use: SingleUse, keyring: KeyRing, ctx: ScanContext, content: Any, now: float
) -> _Decision:
    """Every check, in the README's order, with reads only; the Redis fast path consumes the code.

    A suspended person's codes lie before the watermark their suspension set: while the person is
    suspended that watermark is not what refuses them. The code is consumed and answered
    PERSON_SUSPENDED, so the scanner learns why. Once the person is active again, codes from
    before the suspension are VOUCHER_REVOKED (the watermark stays). A family code whose binder
    was suspended is VOUCHER_REVOKED (the binder's watermark, or the acting check).
    """
    d = _Decision()
    try:
        if ctx.business_type not in ctx.institution_services:
            raise Refusal("INSTITUTION_NOT_DESIGNATED")
        if offline.is_offline(content):  # YO1: made on the phone (voucher/offline.py)
            yo1 = offline.checked(uow, content, now, d)
            person, suspended = yo1.person, yo1.suspended
            use = (yo1.code.credential_id, yo1.code.use_id, yo1.code.exp)
        else:
            person, suspended, use = _checked_signed(uow, keyring, content, now, d)
        _consume_fast(single_use, *use, now)
        d.consumed = use
        # From here the code is spent, whatever the answer (as with payment codes).
        if suspended:
            raise Refusal("PERSON_SUSPENDED")
        if d.actor_person_id is not None:
            _check_still_acting(uow, d.actor_person_id, person.psn_no)
        if not registry.region_covered(uow, person, ctx.institution_region):
            raise Refusal("REGION_NOT_COVERED")
        if ctx.business_type == PHARMACY_PURCHASE and not has_personal_account(person.insurance_type):
            raise Refusal("SCOPE_NOT_ALLOWED")
        d.person = person
    except Refusal as refusal:
        d.code = refusal.code
    return d


def _checked_signed(
    uow: UnitOfWork, keyring: KeyRing, content: Any, now: float, d: _Decision
) -> tuple[Any, bool, tuple[str, str, int]]:
    """The signed-code checks up to single use: (person, suspended, (sub, jti, exp))."""
    claims = checked_claims(keyring, content, now)
    person = queries.PERSON_BY_SUB.first(uow, {"sub": claims["sub"]})
    if person is None:
        raise Refusal("VOUCHER_SIGNATURE_INVALID")
    watermark = person.revoked_before_ms
    d.person_id, d.jti, d.rules_version = person.id, claims["jti"], person.rules_version
    actor_watermark = 0
    if "act" in claims:
        actor = queries.ACTOR_BY_SUB.first(uow, {"sub": claims["act"]["sub"]})
        if actor is None:
            raise Refusal("VOUCHER_SIGNATURE_INVALID")
        d.actor_person_id, actor_watermark = actor
    issued = issued_ms(claims["iat"], claims["jti"])
    if issued is None:
        raise Refusal("VOUCHER_MALFORMED")
    suspended = person.status != "active"
    if (issued < watermark and not suspended) or issued < actor_watermark:
        raise Refusal("VOUCHER_REVOKED")
    return person, suspended, (claims["sub"], claims["jti"], claims["exp"])


def _consume_fast(single_use: SingleUse, sub: str, jti: str, exp: int, now: float) -> None:
    """Single use, fast path: Redis SET NX is atomic across every worker and host (sent with the
    request's nonce in one round trip)."""
    ttl = max(1, math.ceil(exp + LEEWAY - now))
    if not single_use.claim(f"yb:vuse:{{{sub}}}:{jti}", ttl):
        raise Refusal("VOUCHER_ALREADY_USED")


def _record_use(uow: UnitOfWork, sub: str, jti: str, exp: int) -> bool:
    """Single use, durable: False when the (sub, jti) row exists already (Redis lost its key)."""
    values = {
        "sub": sub,
        "jti": jti,
        "expires_at": datetime.fromtimestamp(exp + LEEWAY, UTC),
        "used_at": utcnow(),
    }
    return queries.insert_use_if_new(uow, values)


def _write_outcome(uow: UnitOfWork, d: _Decision, ctx: ScanContext) -> Verification | None:
    """The durable consumption, the ec_token and the audit row (one transaction, committed by the
    caller). Returns the answer when accepted; else d.code says why."""
    if d.consumed is not None and not _record_use(uow, *d.consumed):
        d.code = "VOUCHER_ALREADY_USED"  # Redis forgot, the database did not
    if d.code is None and d.person is not None:
        _supervise(uow, d, ctx)
    answer = None
    if d.code is None and d.person is not None:
        ec, ec_exp = ec_tokens.issue_ec_token(
            uow,
            person_id=d.person.id,
            institution_id=ctx.institution_id,
            business_type=ctx.business_type,
            actor_person_id=d.actor_person_id,
        )
        expires_in = int((ec_exp - utcnow()).total_seconds())
        answer = Verification(ec, expires_in, ctx.business_type, _person_view(d.person), d.warnings)
    queries.INSERT_USAGE.execute(
        uow,
        {
            "person_id": d.person_id,
            "actor_person_id": d.actor_person_id,
            "institution_id": ctx.institution_id,
            "business_type": ctx.business_type,
            "operator_id": ctx.operator_id,
            "operator_name": ctx.operator_name,
            "device_id": ctx.device_id,
            "out_biz_no": ctx.out_biz_no,
            "jti": d.jti,
            "result": "accepted" if d.code is None else "refused",
            "code": d.code,
            "created_at": utcnow(),
            "kind": d.kind,
            "credential_id": d.credential_id,
        },
    )
    return answer


def _supervise(uow: UnitOfWork, d: _Decision, ctx: ScanContext) -> None:
    """The identity rules on a scan about to be accepted (the code is already spent): count it when
    allowed (the warn rules it broke go to the answer's `warnings`); on a block set
    SUPERVISION_BLOCKED. The check wrote its alerts into this unit of work,
    which commits them with the refusal's audit row (nothing is rolled back here)."""
    assert d.person is not None and d.consumed is not None
    sub, jti, _ = d.consumed
    now = utcnow()
    try:
        verdict = supervision.check_scan(
            uow,
            person_id=d.person.id,
            institution_id=ctx.institution_id,
            institution_region=ctx.institution_region,
            scan_ref=f"vc_{sub}.{jti}",
            now=now,
            rules_version=d.rules_version,  # the rules as of the request's first statement
        )
    except supervision.SupervisionBlocked as exc:
        d.code, d.blocked = exc.code, exc
        return
    d.warnings = verdict.warnings
    supervision.record_accepted_scan(
        uow, person_id=d.person.id, institution_region=ctx.institution_region, at=now
    )


def _person_view(person: Any) -> dict[str, Any]:
    """Masked person data for the scanner: never the full name or ID number."""
    return {
        "psn_no": person.psn_no,
        "name_masked": person.name_masked,
        "id_number_masked": person.id_number_masked,
        "insurance_type": person.insurance_type,
        "insured_region": person.insured_region,
        "has_personal_account": has_personal_account(person.insurance_type),
    }


def _check_still_acting(uow: UnitOfWork, actor_person_id: int, member_psn_no: str) -> None:
    """A family code is void once the binding ends or the binder is suspended."""
    actor = registry.person_by_id(uow, actor_person_id)
    if actor is None or actor.status != "active":
        raise Refusal("VOUCHER_REVOKED")
    try:
        family.acting_permission(
            uow, actor_person_id=actor_person_id, member_psn_no=member_psn_no, action="show_voucher"
        )
    except AppError as exc:
        raise Refusal("VOUCHER_REVOKED") from exc
