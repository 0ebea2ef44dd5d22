"""Ed25519 signing keys: creation, rotation, retirement, JWKS, and an in-process cache. No Flask here."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from yibao import crypto
from yibao.db import UnitOfWork, utcnow

from .models import SigningKey
from .token import ALG, b64u, b64u_decode

KEY_PURPOSE = "voucher/signing-key"
REFRESH_SECONDS = 10.0  # how long a worker trusts its cached key set; bounds rotation propagation
FORCED_RELOAD_GAP = 1.0  # an unknown kid reloads at most this often (no reload storm from garbage kids)

UowFactory = Callable[[bool], AbstractContextManager[UnitOfWork]]


@dataclass(frozen=True)
class LoadedKey:
    kid: str
    generation: int
    public: Ed25519PublicKey
    public_x: str
    private: Ed25519PrivateKey | None  # only the signing key is decrypted


def _new_kid() -> str:
    return secrets.token_urlsafe(3)  # 4 characters: the kid travels in every QR code


def _live(now: datetime):  # type: ignore[no-untyped-def]
    return (SigningKey.retired_at.is_(None)) & (
        SigningKey.retire_after.is_(None) | (SigningKey.retire_after > now)
    )


def create_key(uow: UnitOfWork, generation: int) -> SigningKey:
    """Insert a new key of this generation (the caller commits; a concurrent twin fails on commit)."""
    private = Ed25519PrivateKey.generate()
    raw_private = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    raw_public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    kid = _new_kid()
    row = SigningKey(
        kid=kid,
        generation=generation,
        public_x=b64u(raw_public),
        private_enc=crypto.encrypt(b64u(raw_private), purpose=KEY_PURPOSE, aad=kid),
    )
    uow.session.add(row)
    uow.session.flush()
    return row


def ensure_key(uow_factory: UowFactory) -> bool:
    """Create a first key when no live one signs; True if this call created it. Safe across workers.

    The top generation is the signing key whenever it is live (rotation always adds top + 1), so
    "is the top key live?" and "insert top + 1" refer to the same snapshot: two racers that both
    saw no key insert the same generation and the unique constraint lets exactly one win.
    """
    now = utcnow()
    with uow_factory(False) as uow:
        top = uow.session.scalar(select(SigningKey).order_by(SigningKey.generation.desc()).limit(1))
        if top is not None and _is_live(top, now) and top.superseded_at is None:
            return False
        try:
            create_key(uow, (top.generation if top else 0) + 1)
            uow.commit()
        except IntegrityError:  # another worker won the race for this generation: use theirs
            uow.rollback()
            return False
    return True


def rotate(uow: UnitOfWork, *, max_token_lifetime: int, leeway: int) -> tuple[SigningKey, list[str]]:
    """A new key signs at once; earlier live keys verify until their last token can have expired."""
    now = utcnow()
    # Workers may sign with the old key until their cache refreshes, hence REFRESH_SECONDS.
    retire_after = now + timedelta(seconds=max_token_lifetime + leeway + REFRESH_SECONDS)
    previous = uow.session.scalars(
        select(SigningKey).where(_live(now), SigningKey.superseded_at.is_(None))
    ).all()
    for key in previous:
        key.superseded_at = now
        key.retire_after = retire_after
    top = uow.session.scalar(select(func.max(SigningKey.generation))) or 0
    new = create_key(uow, top + 1)
    return new, [k.kid for k in previous]


def retire_expired(uow: UnitOfWork) -> list[str]:
    """Mark keys whose verification window has passed as retired (they already left the JWKS)."""
    now = utcnow()
    kids = list(
        uow.session.scalars(
            select(SigningKey.kid).where(
                SigningKey.retired_at.is_(None),
                SigningKey.retire_after.is_not(None),
                SigningKey.retire_after <= now,
            )
        )
    )
    if kids:
        uow.session.execute(update(SigningKey).where(SigningKey.kid.in_(kids)).values(retired_at=now))
    return kids


def retire_now(uow: UnitOfWork, kid: str) -> bool:
    """Withdraw a key immediately (compromise): its tokens stop verifying at once."""
    row = uow.session.get(SigningKey, kid)
    if row is None or row.retired_at is not None:
        return False
    row.retired_at = utcnow()
    row.superseded_at = row.superseded_at or row.retired_at
    return True


def list_keys(uow: UnitOfWork) -> list[dict]:
    now = utcnow()
    rows = uow.session.scalars(select(SigningKey).order_by(SigningKey.generation)).all()
    top_live = max((r.generation for r in rows if _is_live(r, now) and r.superseded_at is None), default=None)
    return [
        {
            "kid": r.kid,
            "generation": r.generation,
            "status": "signing"
            if r.generation == top_live
            else ("verifying" if _is_live(r, now) else "retired"),
            "created_at": r.created_at.isoformat(),
            "retire_after": r.retire_after.isoformat() if r.retire_after else None,
        }
        for r in rows
    ]


def _is_live(row: SigningKey, now: datetime) -> bool:
    return row.retired_at is None and (row.retire_after is None or row.retire_after > now)


def jwk(key: LoadedKey) -> dict[str, str]:
    return {"kty": "OKP", "crv": "Ed25519", "kid": key.kid, "alg": ALG, "use": "sig", "x": key.public_x}


class KeyRing:
    """The live keys of this process, reloaded every REFRESH_SECONDS so rotation reaches every worker."""

    def __init__(self, uow_factory: UowFactory, refresh: float = REFRESH_SECONDS) -> None:
        self._uow_factory = uow_factory
        self._refresh = refresh
        self._lock = threading.Lock()
        self._keys: dict[str, LoadedKey] = {}
        self._signing: LoadedKey | None = None
        self._loaded_at = float("-inf")
        self._forced_at = float("-inf")

    def _load(self) -> None:
        now = utcnow()
        with self._uow_factory(True) as uow:
            rows = uow.session.scalars(
                select(SigningKey).where(_live(now)).order_by(SigningKey.generation)
            ).all()
        keys: dict[str, LoadedKey] = {}
        signing = None
        for row in rows:
            cached = self._keys.get(row.kid)
            private = cached.private if cached else None
            if row.superseded_at is None and private is None:
                raw = b64u_decode(crypto.decrypt(row.private_enc, purpose=KEY_PURPOSE, aad=row.kid))
                private = Ed25519PrivateKey.from_private_bytes(raw)
            public = (
                cached.public if cached else Ed25519PublicKey.from_public_bytes(b64u_decode(row.public_x))
            )
            keys[row.kid] = LoadedKey(row.kid, row.generation, public, row.public_x, private)
            if row.superseded_at is None:
                signing = keys[row.kid]
        self._keys, self._signing = keys, signing
        self._loaded_at = time.monotonic()

    def _fresh(self) -> None:
        if time.monotonic() - self._loaded_at > self._refresh:
            with self._lock:
                if time.monotonic() - self._loaded_at > self._refresh:
                    self._load()

    def invalidate(self) -> None:
        """Forget the cache (after a rotation in this process, and in tests)."""
        self._loaded_at = float("-inf")

    def signing_key(self) -> LoadedKey:
        """The key that signs now; the first call on an empty database creates one."""
        self._fresh()
        if self._signing is None or self._signing.private is None:
            with self._lock:
                ensure_key(self._uow_factory)
                self._load()
        assert self._signing is not None and self._signing.private is not None
        return self._signing

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        """Our key with this kid, or None; an unknown kid triggers one rate-limited reload."""
        self._fresh()
        key = self._keys.get(kid)
        if key is None and time.monotonic() - self._forced_at > FORCED_RELOAD_GAP:
            with self._lock:
                self._forced_at = time.monotonic()
                self._load()
            key = self._keys.get(kid)
        return key.public if key else None

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        self._fresh()
        if not self._keys:
            self.signing_key()
        return {"keys": [jwk(k) for k in self._keys.values()]}
