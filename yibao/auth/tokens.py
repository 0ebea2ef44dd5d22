"""User sessions: 15-minute access JWTs and rotating refresh tokens with reuse detection."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

import jwt
from sqlalchemy import bindparam, select, update

from yibao import crypto
from yibao.db import UnitOfWork, utcnow
from yibao.errors import AppError
from yibao.prepared import Prepared
from yibao.registry.models import Person

from .models import AuthSession, RefreshToken

ACCESS_TYP = "at+jwt"  # RFC 9068
ISSUER = "yibao"
AUDIENCE = "yibao-app"
ALGORITHMS = ["HS256"]  # allow-list: the key is symmetric and never leaves the server


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True)
class CurrentUser:
    person_id: int
    psn_no: str
    session_id: str


def _access_key(secret: str) -> bytes:
    return crypto.derive_key(secret, "auth/access-token")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_access_token(secret: str, *, psn_no: str, session_id: str, ttl: int) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": psn_no,
        "sid": session_id,
        "iat": now,
        "exp": now + ttl,
        "jti": secrets.token_urlsafe(12),
    }
    return jwt.encode(claims, _access_key(secret), algorithm="HS256", headers={"typ": ACCESS_TYP})


def decode_access_token(secret: str, token: str) -> dict:
    """Verify signature, typ, iss, aud and expiry; raise TOKEN_INVALID on any failure.

    The token is parsed once: `alg` is checked by PyJWT against the allow-list, `typ` on the header
    it returns with the verified claims.
    """
    try:
        decoded = jwt.decode_complete(
            token,
            _access_key(secret),
            algorithms=ALGORITHMS,
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "sid", "iss", "aud"]},
            leeway=5,
        )
    except jwt.PyJWTError as exc:
        raise AppError("TOKEN_INVALID") from exc
    if decoded["header"].get("typ") != ACCESS_TYP or decoded["header"].get("alg") not in ALGORITHMS:
        raise AppError("TOKEN_INVALID")
    return decoded["payload"]


def start_session(uow: UnitOfWork, *, person_id: int, device_id: str) -> AuthSession:
    """A new token family for an activated device; earlier devices' sessions end."""
    now = utcnow()
    uow.session.execute(
        update(AuthSession)
        .where(AuthSession.person_id == person_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason="new_device")
    )
    sess = AuthSession(id=secrets.token_hex(16), person_id=person_id, device_id=device_id, created_at=now)
    uow.session.add(sess)
    uow.session.flush()
    return sess


def issue_pair(
    uow: UnitOfWork, sess: AuthSession, *, psn_no: str, secret: str, access_ttl: int, refresh_ttl: int
) -> TokenPair:
    refresh = "rt_" + secrets.token_urlsafe(32)
    uow.session.add(
        RefreshToken(
            token_hash=_hash(refresh),
            session_id=sess.id,
            expires_at=utcnow() + timedelta(seconds=refresh_ttl),
        )
    )
    uow.session.flush()
    access = issue_access_token(secret, psn_no=psn_no, session_id=sess.id, ttl=access_ttl)
    return TokenPair(access, refresh, access_ttl)


def rotate_refresh_token(
    uow: UnitOfWork, token: str, *, secret: str, access_ttl: int, refresh_ttl: int
) -> tuple[TokenPair | None, str | None]:
    """Exchange a refresh token for a new pair.

    Returns (pair, None) on success or (None, error_code). A token presented a second time
    means it was stolen or leaked: the whole family is revoked, and the caller must commit that.
    """
    row = uow.session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == _hash(token)).with_for_update()
    )
    if row is None:
        return None, "REFRESH_TOKEN_INVALID"
    sess = uow.session.get(AuthSession, row.session_id, with_for_update=True)
    now = utcnow()
    if sess is None or sess.revoked_at is not None:
        return None, "REFRESH_TOKEN_INVALID"
    if row.used_at is not None:
        sess.revoked_at = now
        sess.revoked_reason = "refresh_reuse"
        uow.session.flush()
        return None, "REFRESH_TOKEN_REUSED"
    if row.expires_at <= now:
        return None, "REFRESH_TOKEN_INVALID"
    # Conditional update: of two concurrent refreshes with the same token only one wins.
    won = uow.session.execute(
        update(RefreshToken)
        .where(RefreshToken.token_hash == row.token_hash, RefreshToken.used_at.is_(None))
        .values(used_at=now)
    ).rowcount
    if won != 1:
        sess.revoked_at = now
        sess.revoked_reason = "refresh_reuse"
        uow.session.flush()
        return None, "REFRESH_TOKEN_REUSED"
    person = uow.session.get(Person, sess.person_id)
    if person is None or person.status != "active":
        return None, "PERSON_SUSPENDED"
    return issue_pair(
        uow, sess, psn_no=person.psn_no, secret=secret, access_ttl=access_ttl, refresh_ttl=refresh_ttl
    ), None


# Built once: every user request runs it, and building the statement cost more CPU than executing it.
_SESSION_AND_PERSON = Prepared(
    select(AuthSession.revoked_at, Person.id, Person.psn_no, Person.status)
    .join(Person, Person.id == AuthSession.person_id)
    .where(AuthSession.id == bindparam("sid")),
    ("sid",),
)


def authenticate(uow: UnitOfWork, token: str, *, secret: str) -> CurrentUser:
    """Resolve a bearer access token to the user; the session must still be live."""
    claims = decode_access_token(secret, token)
    row = _SESSION_AND_PERSON.first(uow, {"sid": claims["sid"]})
    if row is None or row.revoked_at is not None or row.psn_no != claims["sub"]:
        raise AppError("TOKEN_INVALID")
    if row.status != "active":
        raise AppError("PERSON_SUSPENDED")
    return CurrentUser(person_id=row.id, psn_no=row.psn_no, session_id=claims["sid"])


def end_session(uow: UnitOfWork, session_id: str, reason: str = "logout") -> None:
    uow.session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
    )
