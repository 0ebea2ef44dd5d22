"""Prebuilt statements of the hot paths (issuance and verification) and the dialect they need.

Built once, on the tables (Core), with the values bound at execution: no ORM flush and no
per-request statement construction, which on SQLite costs more CPU than running the statement.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from supervision import checks as supervision
from yibao.db import UnitOfWork
from yibao.prepared import Prepared
from yibao.registry.models import Person

from .models import EcToken, Subject, UsageRecord, VoucherUse

# The scan's writes, on the driver's cursor (yibao/prepared.py): every column they write is named.
INSERT_EC_TOKEN = Prepared(
    EcToken.__table__.insert(),
    (
        "token_hash",
        "person_id",
        "institution_id",
        "business_type",
        "actor_person_id",
        "created_at",
        "expires_at",
    ),
)
INSERT_USAGE = Prepared(
    UsageRecord.__table__.insert(),
    (
        "person_id",
        "actor_person_id",
        "institution_id",
        "business_type",
        "operator_id",
        "operator_name",
        "device_id",
        "out_biz_no",
        "jti",
        "result",
        "code",
        "created_at",
        "kind",
        "credential_id",
    ),
)

# Issuance: the caller and their subject's reference in one query (columns, no ORM entities).
PERSON_WITH_SUBJECT = Prepared(
    select(Person.id, Person.psn_no, Person.status, Person.activated_at, Subject.sub)
    .outerjoin(Subject, Subject.person_id == Person.id)
    .where(Person.id == bindparam("person_id")),
    ("person_id",),
)
# Verification: whose code it is (the columns the checks and the answer use; offline.ScannedPerson
# names them for YO1 codes), with the revocation watermark and supervision's rules version (for
# check_scan: no round trip of its own).
SCANNED_PERSON_COLUMNS = (
    Person.id,
    Person.psn_no,
    Person.status,
    Person.insurance_type,
    Person.insured_region,
    Person.name_masked,
    Person.id_number_masked,
)
PERSON_BY_SUB = Prepared(
    select(*SCANNED_PERSON_COLUMNS, Subject.revoked_before_ms, supervision.rules_version_column())
    .join(Subject, Subject.person_id == Person.id)
    .where(Subject.sub == bindparam("sub")),
    ("sub",),
)
# Verification of a family code: who showed it (RFC 8693 `act`), with their watermark.
ACTOR_BY_SUB = Prepared(
    select(Subject.person_id, Subject.revoked_before_ms).where(Subject.sub == bindparam("sub")), ("sub",)
)

# INSERT ... ON CONFLICT DO NOTHING RETURNING id: no row back when (sub, jti) was used already.
_INSERT_USE_IF_NEW = {
    name: Prepared(
        insert(VoucherUse.__table__).on_conflict_do_nothing().returning(VoucherUse.__table__.c.id),
        ("sub", "jti", "expires_at", "used_at"),
    )
    for name, insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}


def insert_use_if_new(uow: UnitOfWork, values: dict[str, Any]) -> bool:
    """Insert the single-use row; False when the (sub, jti) row exists already."""
    return bool(_INSERT_USE_IF_NEW[uow.dialect].execute(uow, values))
