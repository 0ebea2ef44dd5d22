"""Voucher tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from yibao.db import Base, BigId, UTCDateTime, utcnow


class EcToken(Base):
    """The opaque ec_token a successful verification hands to the institution (stored hashed)."""

    __tablename__ = "ec_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    business_type: Mapped[str] = mapped_column(String(8))
    actor_person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SigningKey(Base):
    """An Ed25519 voucher signing key; the private half is AES-GCM encrypted with the app secret.

    `generation` is unique, so two workers creating the first key (or two operators rotating at
    once) cannot both succeed: the loser re-reads. The highest live generation signs.
    """

    __tablename__ = "voucher_signing_keys"

    kid: Mapped[str] = mapped_column(String(16), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, unique=True)
    public_x: Mapped[str] = mapped_column(String(64))  # base64url raw public key (JWK "x")
    private_enc: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    retire_after: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Subject(Base):
    """Per-person voucher state: the opaque `sub` tokens carry, and the revocation watermark.

    Codes of this person issued before revoked_before_ms (unix milliseconds) are void.
    """

    __tablename__ = "voucher_subjects"

    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), primary_key=True)
    sub: Mapped[str] = mapped_column(String(16), unique=True)
    revoked_before_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VoucherUse(Base):
    """Durable single-use record: a consumed (sub, jti) never verifies again, even after a Redis flush.

    Offline codes (voucher/offline.py) use it too: sub is the credential id (16 characters, so never
    equal to a signed code's 8-character sub) and jti is "{step}:{seq}".

    On PostgreSQL the table is partitioned by month of expires_at (yibao/partitions.py), and the
    primary key is (id, expires_at): expires_at is a function of the code itself (a signed code's
    signed exp + leeway, a YO1 code's step), so a replay carries the same (sub, jti, expires_at) and
    lands in the same partition, where the unique constraint refuses it.
    """

    __tablename__ = "voucher_uses"
    __table_args__ = (UniqueConstraint("sub", "jti", "expires_at", name="uq_voucher_uses_sub_jti"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sub: Mapped[str] = mapped_column(String(16))
    jti: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)  # rows past it may be pruned
    used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UsageRecord(Base):
    """One verification attempt: accepted or refused, with the reason, institution and scanner details.

    person_id is NULL when the token never proved whose it was (malformed, bad signature). On
    PostgreSQL partitioned by month of created_at (primary key (id, created_at)); kept
    YIBAO_USAGE_RETENTION_DAYS (voucher/housekeeping.py).
    """

    __tablename__ = "voucher_usage"
    __table_args__ = (Index("ix_voucher_usage_person_id_id", "person_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"), nullable=True)
    actor_person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"), nullable=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    business_type: Mapped[str] = mapped_column(String(8))
    operator_id: Mapped[str] = mapped_column(String(64))
    operator_name: Mapped[str] = mapped_column(String(64))
    device_id: Mapped[str] = mapped_column(String(128))
    out_biz_no: Mapped[str] = mapped_column(String(64))
    jti: Mapped[str | None] = mapped_column(String(16), nullable=True)  # offline codes: "{step}:{seq}"
    result: Mapped[str] = mapped_column(String(16))  # accepted | refused
    code: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(8), default="signed", server_default="signed")  # | offline
    credential_id: Mapped[str | None] = mapped_column(String(32), nullable=True)  # offline codes


ACTIVE_CREDENTIAL = text("ended_at IS NULL")


class OfflineCredential(Base):
    """A per-device secret the phone makes YO1 codes with (voucher/offline.py), stored encrypted.

    At most one active (ended_at NULL) credential per person and device: a unique partial index, so
    two concurrent creations cannot both stay active (voucher/credentials.py retries the loser).
    """

    __tablename__ = "voucher_offline_credentials"
    __table_args__ = (
        Index(
            "uq_voucher_offline_credentials_active",
            "person_id",
            "device_id",
            unique=True,
            postgresql_where=ACTIVE_CREDENTIAL,
            sqlite_where=ACTIVE_CREDENTIAL,
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the credential_id
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    device_id: Mapped[str] = mapped_column(String(128))
    secret_enc: Mapped[str] = mapped_column(String(255))  # crypto.encrypt, the id as associated data
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_reason: Mapped[str | None] = mapped_column(String(16), nullable=True)
