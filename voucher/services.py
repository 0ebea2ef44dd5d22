"""Voucher services: issuance, verification, revocation, usage audit, ec_tokens. No Flask here."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import math
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from family_accounts import acting as family
from yibao.db import MAX_ID, UnitOfWork, utcnow
from yibao.errors import AppError, register_messages
from yibao.redis_store import guard
from yibao.registry import services as registry
from yibao.registry.models import Institution, Person

from . import qr
from . import token as tk
from .keys import KeyRing
from .models import EcToken, Subject, UsageRecord, VoucherUse

EC_TOKEN_TTL = 30 * 60
DEFAULT_TTL = 60
MAX_TTL = 300  # the issue's ceiling; key retirement is computed from it
LEEWAY = 5  # clock skew tolerated on iat/exp
USAGE_PAGE_MAX = 100
PHARMACY_PURCHASE = "02121"

register_messages(
    {
        "EC_TOKEN_INVALID": (
            422,
            "The ec_token is unknown, expired, or was issued to another institution.",
            "ec_token 无效、已过期或不属于本机构。",
        ),
        "VOUCHER_MALFORMED": (400, "The scanned content is not a voucher.", "扫描内容不是有效的医保码。"),
        "VOUCHER_SIGNATURE_INVALID": (
            422,
            "The voucher was not issued by this platform for this use.",
            "医保码签名校验失败或非本平台签发。",
        ),
        "VOUCHER_EXPIRED": (422, "The voucher has expired; refresh the code.", "医保码已过期，请刷新。"),
        "VOUCHER_ALREADY_USED": (
            409,
            "The voucher was already used; refresh the code.",
            "医保码已使用，请刷新后重试。",
        ),
        "VOUCHER_REVOKED": (422, "The voucher was revoked.", "医保码已作废。"),
        "REGION_NOT_COVERED": (
            403,
            "The person is not insured here and no cross-region filing covers this region.",
            "参保地与就医地不一致且无有效异地就医备案。",
        ),
        "SCOPE_NOT_ALLOWED": (
            403,
            "This business type needs employee insurance with a personal account.",
            "该业务需要职工医保个人账户。",
        ),
        "INSTITUTION_NOT_DESIGNATED": (
            403,
            "The institution is not designated for this business type.",
            "本机构未开通该业务类型的定点资格。",
        ),
        "USAGE_CURSOR_INVALID": (422, "The cursor is invalid.", "分页游标无效。"),
    }
)

UowFactory = Callable[[bool], AbstractContextManager[UnitOfWork]]


@dataclass(frozen=True)
class EcTokenGrant:
    """What an ec_token lets its institution do: act for this person, for this business type."""

    person_id: int
    institution_id: int
    business_type: str
    expires_at: datetime
    actor_person_id: int | None = None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# Hot-path inserts built once, on the tables (Core), with the values bound at execution: no ORM
# flush, and no per-request statement construction (which cost more CPU than the insert itself).
_INSERT_EC_TOKEN = EcToken.__table__.insert()
_INSERT_USAGE = UsageRecord.__table__.insert()
_INSERT_USE = {
    "postgresql": pg_insert(VoucherUse.__table__)
    .on_conflict_do_nothing()
    .returning(VoucherUse.__table__.c.id),
    "sqlite": sqlite_insert(VoucherUse.__table__)
    .on_conflict_do_nothing()
    .returning(VoucherUse.__table__.c.id),
}


def issue_ec_token(
    uow: UnitOfWork,
    *,
    person_id: int,
    institution_id: int,
    business_type: str,
    actor_person_id: int | None = None,
    ttl: int = EC_TOKEN_TTL,
) -> tuple[str, datetime]:
    """Create an ec_token (39 chars) bound to the institution, business type and person."""
    token = "ec_" + secrets.token_urlsafe(27)
    now = utcnow()
    expires_at = now + timedelta(seconds=ttl)
    uow.session.execute(
        _INSERT_EC_TOKEN,
        {
            "token_hash": _hash(token),
            "person_id": person_id,
            "institution_id": institution_id,
            "business_type": business_type,
            "actor_person_id": actor_person_id,
            "created_at": now,
            "expires_at": expires_at,
        },
    )
    return token, expires_at


def resolve_ec_token(uow: UnitOfWork, token: str, *, institution_id: int) -> EcTokenGrant:
    """Look up a live ec_token of this institution; anything else is EC_TOKEN_INVALID."""
    if not isinstance(token, str) or not token.startswith("ec_") or len(token) > 40:
        raise AppError("EC_TOKEN_INVALID")
    row = uow.session.scalar(select(EcToken).where(EcToken.token_hash == _hash(token)))
    if (
        row is None
        or row.institution_id != institution_id
        or row.revoked_at is not None
        or row.expires_at <= utcnow()
    ):
        raise AppError("EC_TOKEN_INVALID")
    return EcTokenGrant(
        row.person_id, row.institution_id, row.business_type, row.expires_at, row.actor_person_id
    )


def purge_expired(uow: UnitOfWork, now: datetime | None = None) -> dict[str, int]:
    """Delete single-use rows and ec_tokens past their expiry (cron: `yibao vouchers purge-expired`).

    Safe at any time: a code past exp + leeway is refused as expired before its use row is consulted,
    and an expired ec_token is refused whether its row exists or not. The usage audit is kept.
    """
    now = now or utcnow()
    uses = uow.session.execute(delete(VoucherUse).where(VoucherUse.expires_at < now)).rowcount
    ec = uow.session.execute(delete(EcToken).where(EcToken.expires_at < now)).rowcount
    return {"voucher_uses": uses, "ec_tokens": ec}


# ---------------------------------------------------------------- subjects (opaque sub) and revocation


def _new_ref() -> str:
    return secrets.token_urlsafe(6)  # 8 characters, 48 bits: every byte counts in the QR code


_B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def new_jti(millis: int) -> str:
    """8 characters: the millisecond of the issue second (2 chars) and 36 random bits (6 chars).

    jti only has to be unique per subject (single use is keyed by sub and jti), and the millisecond
    lets revocation be exact without a larger iat.
    """
    return _B64URL_ALPHABET[millis // 64] + _B64URL_ALPHABET[millis % 64] + secrets.token_urlsafe(5)[:6]


def issued_ms(iat: int, jti: str) -> int | None:
    """The issue instant in ms encoded by new_jti, or None when jti does not carry one."""
    hi, lo = _B64URL_ALPHABET.find(jti[0]), _B64URL_ALPHABET.find(jti[1])
    millis = hi * 64 + lo
    if hi < 0 or lo < 0 or millis > 999:
        return None
    return iat * 1000 + millis


def create_subject(uow: UnitOfWork, person_id: int) -> Subject:
    """Give a person their opaque voucher reference (called from the person_created hook)."""
    for _ in range(5):
        try:
            with uow.session.begin_nested():
                row = Subject(person_id=person_id, sub=_new_ref(), revoked_before_ms=0)
                uow.session.add(row)
            return row
        except IntegrityError:  # the 48-bit reference collided, or a concurrent insert for this person
            existing = uow.session.get(Subject, person_id)
            if existing is not None:
                return existing
    raise RuntimeError("could not allocate a voucher subject")


def subject_of(uow: UnitOfWork, person_id: int) -> Subject | None:
    return uow.session.get(Subject, person_id)


def _subject_or_create(uow: UnitOfWork, person_id: int, write_uow: UowFactory) -> Subject:
    row = subject_of(uow, person_id)
    if row is not None:
        return row
    # Persons created before this package existed: create in a separate, committed transaction.
    with write_uow(False) as wuow:
        created = create_subject(wuow, person_id)
        wuow.commit()
        return created


def revoke_outstanding(uow: UnitOfWork, person_id: int, now: float | None = None) -> int:
    """Void every code issued to (or shown by) this person so far; returns the watermark in ms.

    A code's issue instant is iat plus the milliseconds carried in its jti (see new_jti), so a code
    issued a moment after the revocation is valid and one issued a moment before is not. Ties
    within the same millisecond count as before: refusing is the safe side.
    """
    now = time.time() if now is None else now
    row = subject_of(uow, person_id) or create_subject(uow, person_id)
    row.revoked_before_ms = max(row.revoked_before_ms, math.floor(now * 1000) + 1)
    uow.session.flush()
    return row.revoked_before_ms


def on_person_created(uow: UnitOfWork, person: Person, opening_balance_fen: int = 0) -> None:
    create_subject(uow, person.id)


def on_person_suspended(uow: UnitOfWork, person: Person) -> None:
    """A suspended person's codes die at once, and so do ec_tokens not yet used for payment."""
    revoke_outstanding(uow, person.id)
    uow.session.execute(
        update(EcToken)
        .where(EcToken.person_id == person.id, EcToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def on_person_activated(uow: UnitOfWork, person: Person) -> None:
    """Activation on a (new) device ends the codes the old device may still show."""
    revoke_outstanding(uow, person.id)


# ---------------------------------------------------------------- issuance

# Built once: constructing a statement per request costs more than running it on SQLite.
_PERSON_WITH_SUBJECT = (
    select(Person, Subject)
    .outerjoin(Subject, Subject.person_id == Person.id)
    .where(Person.id == bindparam("person_id"))
)
_PERSON_BY_SUB = (
    select(Person, Subject.revoked_before_ms)
    .join(Subject, Subject.person_id == Person.id)
    .where(Subject.sub == bindparam("sub"))
)


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
    """Sign a short-lived code for the caller, or for a family member the caller may show it for."""
    # One query for the person and their subject: issuance is on the hot path of every app open.
    row = uow.session.execute(_PERSON_WITH_SUBJECT, {"person_id": person_id}).first()
    if row is None or row[0].status != "active":
        raise AppError("PERSON_SUSPENDED")
    actor, subject = row
    if actor.activated_at is None:
        raise AppError("NOT_ACTIVATED")
    act = None
    if on_behalf_of is not None and on_behalf_of != actor.psn_no:
        member_id = family.acting_permission(
            uow, actor_person_id=actor.id, member_psn_no=on_behalf_of, action="show_voucher"
        )
        member = registry.person_by_id(uow, member_id)
        if member is None or member.status != "active":
            raise AppError("PERSON_SUSPENDED")
        act = subject or _subject_or_create(uow, actor.id, write_uow)
        subject = subject_of(uow, member.id) or _subject_or_create(uow, member.id, write_uow)
    elif subject is None:
        subject = _subject_or_create(uow, actor.id, write_uow)
    ttl = max(1, min(ttl, MAX_TTL))
    now_ms = time.time_ns() // 1_000_000
    iat = now_ms // 1000
    claims: dict[str, Any] = {
        "iss": tk.ISSUER,
        "aud": tk.AUDIENCE,
        "sub": subject.sub,
        "iat": iat,
        "exp": iat + ttl,
        "jti": new_jti(now_ms % 1000),
    }
    if act is not None:
        claims["act"] = {"sub": act.sub}  # RFC 8693: who is presenting the member's code
    key = keyring.signing_key()
    header_raw = tk.dumps({"alg": tk.ALG, "kid": key.kid, "typ": tk.TYP})
    payload_raw = tk.dumps(claims)
    unsigned = tk.Parts(header_raw, payload_raw, b"")
    assert key.private is not None
    parts = tk.Parts(header_raw, payload_raw, key.private.sign(unsigned.signing_input))
    content = parts.qr_content
    image = qr.data_uri(content, qr_kind) if qr_kind else None
    expires_in = max(0, claims["exp"] - int(time.time()))
    return IssuedVoucher(
        parts.compact, content, datetime.fromtimestamp(claims["exp"], UTC), expires_in, image
    )


# ---------------------------------------------------------------- verification


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


@dataclass
class VerificationOutcome:
    """The result of one attempt (already committed with its audit row)."""

    code: str | None = None
    ec_token: str | None = None
    expires_in: int = 0
    person: dict[str, Any] | None = None

    @property
    def accepted(self) -> bool:
        return self.code is None


class _Refusal(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _claims_checked(keyring: KeyRing, content: Any, now: float) -> dict[str, Any]:
    """Everything that needs no database: form, allow-listed alg, our kid, signature, typ/iss/aud, time."""
    try:
        parts = tk.split(content)
        header = tk.loads_object(parts.header_raw)
    except tk.Malformed as exc:
        raise _Refusal("VOUCHER_MALFORMED") from exc
    if header.get("alg") != tk.ALG:  # allow-list: "none", HS256 and everything else stop here
        raise _Refusal("VOUCHER_SIGNATURE_INVALID")
    kid = header.get("kid")
    if not set(header) <= tk.HEADER_PARAMS or not isinstance(kid, str) or not tk.KID_RE.fullmatch(kid):
        raise _Refusal("VOUCHER_MALFORMED")
    public = keyring.public_key(kid)  # our own key set only; nothing in the token names a key URL
    if public is None or len(parts.signature) != tk.SIG_LEN:
        raise _Refusal("VOUCHER_SIGNATURE_INVALID")
    try:
        public.verify(parts.signature, parts.signing_input)
    except InvalidSignature as exc:
        raise _Refusal("VOUCHER_SIGNATURE_INVALID") from exc
    if header.get("typ") != tk.TYP:
        raise _Refusal("VOUCHER_SIGNATURE_INVALID")
    try:
        claims = tk.loads_object(parts.payload_raw)
    except tk.Malformed as exc:
        raise _Refusal("VOUCHER_MALFORMED") from exc
    if claims.get("iss") != tk.ISSUER or claims.get("aud") != tk.AUDIENCE:
        raise _Refusal("VOUCHER_SIGNATURE_INVALID")
    iat, exp = claims.get("iat"), claims.get("exp")
    if not all(type(v) is int for v in (iat, exp)) or not all(
        isinstance(claims.get(k), str) and tk.REF_RE.fullmatch(claims[k]) for k in ("sub", "jti")
    ):
        raise _Refusal("VOUCHER_MALFORMED")
    act = claims.get("act")
    if act is not None and not (
        isinstance(act, dict) and set(act) == {"sub"} and isinstance(act["sub"], str)
    ):
        raise _Refusal("VOUCHER_MALFORMED")
    if iat > now + LEEWAY or exp <= iat or exp - iat > MAX_TTL:
        raise _Refusal("VOUCHER_SIGNATURE_INVALID")
    if exp + LEEWAY <= now:
        raise _Refusal("VOUCHER_EXPIRED")
    return claims


def _consume_fast(redis: Any, sub: str, jti: str, exp: int, now: float) -> None:
    """Single use, fast path: Redis SET NX is atomic across every worker and host."""
    ttl = max(1, math.ceil(exp + LEEWAY - now))
    with guard():
        fresh = redis.set(f"yb:vuse:{{{sub}}}:{jti}", b"1", nx=True, ex=ttl)
    if not fresh:
        raise _Refusal("VOUCHER_ALREADY_USED")


def _record_use(uow: UnitOfWork, sub: str, jti: str, exp: int) -> bool:
    """Single use, durable: False when the (sub, jti) row exists already (Redis lost its key)."""
    values = {
        "sub": sub,
        "jti": jti,
        "expires_at": datetime.fromtimestamp(exp + LEEWAY, UTC),
        "used_at": utcnow(),
    }
    stmt = _INSERT_USE.get(uow.dialect)  # ON CONFLICT DO NOTHING RETURNING: None when it existed
    if stmt is None:  # pragma: no cover - other databases: a savepoint around a plain insert
        try:
            with uow.session.begin_nested():
                uow.session.execute(VoucherUse.__table__.insert(), values)
            return True
        except IntegrityError:
            return False
    return uow.session.execute(stmt, values).first() is not None


@dataclass
class _Decision:
    code: str | None = None
    person: Person | None = None
    person_id: int | None = None
    actor_person_id: int | None = None
    consumed: tuple[str, str, int] | None = None  # (sub, jti, exp) once Redis took the code
    jti: str | None = None


def _decide(
    uow: UnitOfWork, redis: Any, keyring: KeyRing, ctx: ScanContext, content: Any, now: float
) -> _Decision:
    """Every check, in the issue's order, with reads only; the Redis fast path consumes the code."""
    d = _Decision()
    try:
        if ctx.business_type not in ctx.institution_services:
            raise _Refusal("INSTITUTION_NOT_DESIGNATED")
        claims = _claims_checked(keyring, content, now)
        row = uow.session.execute(_PERSON_BY_SUB, {"sub": claims["sub"]}).first()
        if row is None:
            raise _Refusal("VOUCHER_SIGNATURE_INVALID")
        person, watermark = row
        d.person_id, d.jti = person.id, claims["jti"]
        actor_watermark = 0
        if "act" in claims:
            actor = uow.session.execute(
                select(Subject.person_id, Subject.revoked_before_ms).where(
                    Subject.sub == claims["act"]["sub"]
                )
            ).first()
            if actor is None:
                raise _Refusal("VOUCHER_SIGNATURE_INVALID")
            d.actor_person_id, actor_watermark = actor
        issued = issued_ms(claims["iat"], claims["jti"])
        if issued is None:
            raise _Refusal("VOUCHER_MALFORMED")
        if issued < watermark or issued < actor_watermark:
            raise _Refusal("VOUCHER_REVOKED")
        _consume_fast(redis, claims["sub"], claims["jti"], claims["exp"], now)
        d.consumed = (claims["sub"], claims["jti"], claims["exp"])
        # From here the code is spent, whatever the answer (as with payment codes).
        if person.status != "active":
            raise _Refusal("PERSON_SUSPENDED")
        if d.actor_person_id is not None:
            _check_still_acting(uow, d.actor_person_id, person.psn_no)
        if not registry.region_covered(uow, person, ctx.institution_region):
            raise _Refusal("REGION_NOT_COVERED")
        if ctx.business_type == PHARMACY_PURCHASE and not (
            person.insurance_type == "employee" and person.has_personal_account
        ):
            raise _Refusal("SCOPE_NOT_ALLOWED")
        d.person = person
    except _Refusal as refusal:
        d.code = refusal.code
    return d


def verify_voucher(
    uow_factory: UowFactory,
    redis: Any,
    keyring: KeyRing,
    ctx: ScanContext,
    qr_content: Any,
    *,
    now: float | None = None,
) -> VerificationOutcome:
    """The ec.query role. Commits the durable consumption, the ec_token and the audit row together.

    On SQLite (one writer at a time) the checks run in a read-only transaction and the writes in a
    short second one, so the write lock is held only for three inserts; on PostgreSQL both share
    one transaction. Raises RedisUnavailable when the replay store is down: nothing is written.
    """
    now = time.time() if now is None else now
    with uow_factory(False) as uow:
        if uow.dialect == "sqlite":  # reads outside the single-writer lock
            with uow_factory(True) as ruow:
                d = _decide(ruow, redis, keyring, ctx, qr_content, now)
        else:  # one transaction: saves a connection checkout and a BEGIN/ROLLBACK round trip
            d = _decide(uow, redis, keyring, ctx, qr_content, now)
        outcome = VerificationOutcome(code=d.code)
        with writer_turn(uow):
            _write_outcome(uow, d, ctx, outcome)
            uow.commit()
    return outcome


def _write_outcome(uow: UnitOfWork, d: _Decision, ctx: ScanContext, outcome: VerificationOutcome) -> None:
    """The durable consumption, the ec_token and the audit row: one transaction, committed by the caller."""
    if d.consumed is not None and not _record_use(uow, *d.consumed):
        outcome.code = "VOUCHER_ALREADY_USED"  # Redis forgot, the database did not
    if outcome.code is None and d.person is not None:
        ec, ec_exp = issue_ec_token(
            uow,
            person_id=d.person.id,
            institution_id=ctx.institution_id,
            business_type=ctx.business_type,
            actor_person_id=d.actor_person_id,
        )
        outcome.ec_token, outcome.person = ec, _person_view(d.person)
        outcome.expires_in = int((ec_exp - utcnow()).total_seconds())
    uow.session.execute(
        _INSERT_USAGE,
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
            "result": "accepted" if outcome.code is None else "refused",
            "code": outcome.code,
            "created_at": utcnow(),
        },
    )


_turn_files: dict[str, int] = {}


@contextmanager
def writer_turn(uow: UnitOfWork) -> Iterator[None]:
    """On SQLite, queue writers on an flock before BEGIN IMMEDIATE.

    SQLite's busy handler makes a blocked writer sleep with growing back-off (up to 100 ms), so
    under load most of a verification's latency is sleeping while the lock is already free; a
    process waiting on flock wakes the moment the holder releases it. SQLite's own lock stays
    the guarantee: this only orders the waiters (and is a no-op on PostgreSQL).
    """
    bind = uow.session.get_bind()
    path = bind.url.database if bind.dialect.name == "sqlite" else None
    if not path or path == ":memory:":
        yield
        return
    fd = _turn_files.get(path)
    if fd is None:
        if len(_turn_files) >= 8:  # one database per app in production; tests create many
            os.close(_turn_files.pop(next(iter(_turn_files))))
        fd = _turn_files[path] = os.open(path + ".voucher-writers", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _person_view(person: Person) -> dict[str, Any]:
    """Masked person data for the scanner: never the full name or ID number."""
    return {
        "psn_no": person.psn_no,
        "name_masked": person.name_masked,
        "id_number_masked": person.id_number_masked,
        "insurance_type": person.insurance_type,
        "insured_region": person.insured_region,
        "has_personal_account": person.has_personal_account,
    }


def _check_still_acting(uow: UnitOfWork, actor_person_id: int, member_psn_no: str) -> None:
    """A family code is void once the binding ends or the binder is suspended."""
    actor = registry.person_by_id(uow, actor_person_id)
    if actor is None or actor.status != "active":
        raise _Refusal("VOUCHER_REVOKED")
    try:
        family.acting_permission(
            uow, actor_person_id=actor_person_id, member_psn_no=member_psn_no, action="show_voucher"
        )
    except AppError as exc:
        raise _Refusal("VOUCHER_REVOKED") from exc


# ---------------------------------------------------------------- usage audit


def _encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"id": last_id}).encode()).rstrip(b"=").decode()


def _decode_cursor(cursor: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        last_id = data["id"]
        if type(last_id) is not int or not 1 <= last_id <= MAX_ID:
            raise ValueError(cursor)
        return last_id
    except (ValueError, KeyError, TypeError) as exc:
        raise AppError("USAGE_CURSOR_INVALID") from exc


def usage_page(
    uow: UnitOfWork, *, person_id: int, limit: int = 20, cursor: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a person's verification history, newest first (other domains may call this)."""
    limit = max(1, min(limit, USAGE_PAGE_MAX))
    stmt = (
        select(UsageRecord, Institution.org_id, Institution.name, Person.psn_no)
        .join(Institution, Institution.id == UsageRecord.institution_id)
        .outerjoin(Person, Person.id == UsageRecord.actor_person_id)
        .where(UsageRecord.person_id == person_id)
        .order_by(UsageRecord.id.desc())
        .limit(limit + 1)
    )
    if cursor:
        stmt = stmt.where(UsageRecord.id < _decode_cursor(cursor))
    rows = uow.session.execute(stmt).all()
    items = [
        {
            "at": rec.created_at,
            "institution": {"org_id": org_id, "name": name},
            "business_type": rec.business_type,
            "result": rec.result,
            "code": rec.code,
            "operator_id": rec.operator_id,
            "device_id": rec.device_id,
            "out_biz_no": rec.out_biz_no,
            "acted_by": actor_psn_no,
        }
        for rec, org_id, name, actor_psn_no in rows[:limit]
    ]
    next_cursor = _encode_cursor(rows[limit - 1][0].id) if len(rows) > limit else None
    return items, next_cursor


def usage_for(
    uow: UnitOfWork, *, caller_person_id: int, psn_no: str | None, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """The caller's own history, or a family member's when the binding allows read_usage."""
    person_id = caller_person_id
    caller = registry.person_by_id(uow, caller_person_id)
    if psn_no is not None and (caller is None or psn_no != caller.psn_no):
        person_id = family.acting_permission(
            uow, actor_person_id=caller_person_id, member_psn_no=psn_no, action="read_usage"
        )
    return usage_page(uow, person_id=person_id, limit=limit, cursor=cursor)
