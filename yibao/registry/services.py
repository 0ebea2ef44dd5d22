"""Registry services: persons, cross-region filings and institutions. No Flask here."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Row, ScalarSelect, bindparam, select
from sqlalchemy.exc import IntegrityError

from yibao import crypto, hooks
from yibao.db import UnitOfWork, utcnow
from yibao.errors import AppError

from .models import CrossRegionFiling, Institution, Person
from .validators import birth_date_of, normalize_id_number

ID_PURPOSE = "registry/id-number"
NAME_PURPOSE = "registry/name"
SECRET_PURPOSE = "registry/institution-secret"  # noqa: S105 - a key label, not a secret


def new_psn_no() -> str:
    return "psn_" + secrets.token_urlsafe(12)


def id_index(id_number: str) -> str:
    return crypto.blind_index(normalize_id_number(id_number), purpose=ID_PURPOSE)


def name_index(name: str) -> str:
    return crypto.blind_index(name.strip(), purpose=NAME_PURPOSE)


def create_person(
    uow: UnitOfWork,
    *,
    name: str,
    id_number: str,
    insurance_type: str,
    insured_region: str,
    personal_account_balance_fen: int | None = None,
    status: str = "active",
    retired: bool = False,
    assistance_category: str = "none",
) -> Person:
    """Register an insured person; the same ID number twice is PERSON_EXISTS.

    Raises: PERSON_EXISTS, VALIDATION_FAILED (a balance or `retired` for resident insurance).
    """
    id_number = normalize_id_number(id_number)
    name = name.strip()
    balance = personal_account_balance_fen or 0
    if insurance_type != "employee" and balance:
        raise AppError(
            "VALIDATION_FAILED",
            errors={"personal_account_balance_fen": ["Only employee insurance has a personal account."]},
        )
    _check_retired(insurance_type, retired)
    index = id_index(id_number)
    if uow.session.scalar(select(Person.id).where(Person.id_index == index)) is not None:
        raise AppError("PERSON_EXISTS")
    psn_no = new_psn_no()
    person = Person(
        psn_no=psn_no,
        id_index=index,
        id_number_enc=crypto.encrypt(id_number, purpose=ID_PURPOSE, aad=psn_no),
        name_enc=crypto.encrypt(name, purpose=NAME_PURPOSE, aad=psn_no),
        name_index=name_index(name),
        id_number_masked=crypto.mask_id_number(id_number),
        name_masked=crypto.mask_name(name),
        birth_date=birth_date_of(id_number),
        insurance_type=insurance_type,
        insured_region=insured_region,
        status=status,
        opening_balance_fen=balance,
        retired=retired,
        assistance_category=assistance_category,
    )
    uow.session.add(person)
    try:
        uow.session.flush()
    except IntegrityError as exc:  # a concurrent registration of the same ID number
        uow.rollback()
        raise AppError("PERSON_EXISTS") from exc
    hooks.emit("person_created", uow=uow, person=person, opening_balance_fen=balance)
    return person


def person_by_psn_no(uow: UnitOfWork, psn_no: str, *, lock: bool = False) -> Person | None:
    stmt = select(Person).where(Person.psn_no == psn_no)
    if lock:
        stmt = stmt.with_for_update()
    return uow.session.scalar(stmt)


def person_by_id(uow: UnitOfWork, person_id: int) -> Person | None:
    return uow.session.get(Person, person_id)


# Prebuilt: `pay` runs it on every payment.
_STATUS_SHARED = select(Person.status).where(Person.id == bindparam("person_id")).with_for_update(read=True)


def person_status_locked(uow: UnitOfWork, person_id: int) -> str | None:
    """The person's status, share-locked until the unit of work ends (None if unknown).

    On PostgreSQL a concurrent suspension (an UPDATE of the row) waits for the caller's commit, so a
    money movement that saw "active" cannot commit after the suspension; SQLite serializes writers.
    """
    return uow.session.execute(_STATUS_SHARED, {"person_id": person_id}).scalar()


def person_status_locked_of(person_id: ColumnElement[int]) -> ScalarSelect[str]:
    """person_status_locked as a subquery of the caller's statement: the status of the person whose id
    is `person_id` (a column of that statement), share-locked the same way, with no round trip of its own.
    """
    persons = Person.__table__.c  # Core columns: the caller's statement stays out of the ORM
    return select(persons.status).where(persons.id == person_id).with_for_update(read=True).scalar_subquery()


def _page(uow: UnitOfWork, model: Any, filters: dict[str, Any], limit: int, cursor: int | None) -> Any:
    """Keyset page in id order: (rows, next_cursor); the cursor is the last id seen."""
    stmt = select(model).where(*(getattr(model, k) == v for k, v in filters.items() if v is not None))
    if cursor is not None:
        stmt = stmt.where(model.id > cursor)
    rows = list(uow.session.scalars(stmt.order_by(model.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)


def list_persons(
    uow: UnitOfWork,
    *,
    status: str | None = None,
    insurance_type: str | None = None,
    insured_region: str | None = None,
    limit: int = 50,
    cursor: int | None = None,
) -> tuple[list[Person], int | None]:
    """Persons in registration order, filtered; shown masked by the caller's schema."""
    filters = {"status": status, "insurance_type": insurance_type, "insured_region": insured_region}
    return _page(uow, Person, filters, limit, cursor)


def list_institutions(
    uow: UnitOfWork,
    *,
    kind: str | None = None,
    region: str | None = None,
    status: str | None = None,
    limit: int = 50,
    cursor: int | None = None,
) -> tuple[list[Institution], int | None]:
    """Institutions in registration order, filtered (never their secrets)."""
    return _page(uow, Institution, {"kind": kind, "region": region, "status": status}, limit, cursor)


def person_by_id_number(uow: UnitOfWork, id_number: str) -> Person | None:
    return uow.session.scalar(select(Person).where(Person.id_index == id_index(id_number)))


def require_person(uow: UnitOfWork, psn_no: str) -> Person:
    person = person_by_psn_no(uow, psn_no)
    if person is None:
        raise AppError("PERSON_NOT_FOUND")
    return person


def name_matches(person: Person, name: str) -> bool:
    """Compare a claimed name with the registered one without decrypting (keyed hash)."""
    return secrets.compare_digest(person.name_index, name_index(name))


def reveal_id_number(person: Person) -> str:
    """Decrypt the ID number; only for flows that must show or forward it."""
    return crypto.decrypt(person.id_number_enc, purpose=ID_PURPOSE, aad=person.psn_no)


def _check_retired(insurance_type: str, retired: bool) -> None:
    if retired and insurance_type != "employee":
        raise AppError("VALIDATION_FAILED", errors={"retired": ["Only employee insurance has retirees."]})


def update_person(
    uow: UnitOfWork,
    psn_no: str,
    *,
    status: str | None = None,
    retired: bool | None = None,
    assistance_category: str | None = None,
) -> Person:
    """Change a person's status, retirement or medical-assistance category (the value at `pay` applies).

    Raises: PERSON_NOT_FOUND, VALIDATION_FAILED (`retired` for resident insurance).
    """
    person = require_person(uow, psn_no)
    if retired is not None:
        _check_retired(person.insurance_type, retired)
        person.retired = retired
    if assistance_category is not None:
        person.assistance_category = assistance_category
    if status is not None:
        return set_person_status(uow, psn_no, status)
    uow.session.flush()
    return person


def set_person_status(uow: UnitOfWork, psn_no: str, status: str) -> Person:
    """Suspend or reactivate; suspension voids outstanding vouchers through the hook."""
    person = require_person(uow, psn_no)
    if person.status != status:
        person.status = status
        uow.session.flush()
        if status == "suspended":
            hooks.emit("person_suspended", uow=uow, person=person)
    return person


def add_cross_region_filing(
    uow: UnitOfWork, psn_no: str, *, region: str, valid_from: date | None, valid_until: date | None
) -> CrossRegionFiling:
    person = require_person(uow, psn_no)
    valid_from = valid_from or utcnow().date()
    if valid_until is not None and valid_until < valid_from:
        raise AppError("VALIDATION_FAILED", errors={"valid_until": ["Must not be before valid_from."]})
    if region == person.insured_region:
        raise AppError(
            "VALIDATION_FAILED",
            errors={"region": ["A filing must name a region other than the insured one."]},
        )
    filing = CrossRegionFiling(
        filing_no="crf_" + secrets.token_urlsafe(9),
        person_id=person.id,
        region=region,
        valid_from=valid_from,
        valid_until=valid_until,
    )
    uow.session.add(filing)
    uow.session.flush()
    return filing


def region_covered(uow: UnitOfWork, person: Person | Row[Any], region: str, on: date | None = None) -> bool:
    """True when the person (an entity, or a row with `id` and `insured_region`) may settle in
    `region`: insured there or a valid filing covers it.

    A filing for a prefecture (xxxx00) covers its counties; one for a province (xx0000) covers it all.
    """
    if _covers(person.insured_region, region):
        return True
    on = on or utcnow().date()
    filings = uow.session.scalars(
        select(CrossRegionFiling).where(
            CrossRegionFiling.person_id == person.id,
            CrossRegionFiling.revoked_at.is_(None),
            CrossRegionFiling.valid_from <= on,
        )
    )
    return any((f.valid_until is None or f.valid_until >= on) and _covers(f.region, region) for f in filings)


def _covers(area: str, region: str) -> bool:
    if area == region:
        return True
    if area.endswith("0000"):
        return region[:2] == area[:2]
    if area.endswith("00"):
        return region[:4] == area[:4]
    return False


@dataclass(frozen=True)
class InstitutionCredentials:
    org_id: str
    key_id: str
    secret: str


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


def create_institution(
    uow: UnitOfWork,
    *,
    name: str,
    kind: str,
    region: str,
    services: list[str],
    webhook_url: str | None = None,
    level: str = "secondary",
) -> tuple[Institution, InstitutionCredentials]:
    """Register an institution; the secret is returned once and stored encrypted."""
    org_id = "org_" + secrets.token_urlsafe(9)
    key_id = "ak_" + secrets.token_urlsafe(12)
    secret = _new_secret()
    inst = Institution(
        org_id=org_id,
        name=name.strip(),
        kind=kind,
        region=region,
        services=sorted(set(services)),
        key_id=key_id,
        secret_enc=crypto.encrypt(secret, purpose=SECRET_PURPOSE, aad=key_id),
        webhook_url=webhook_url,
        level=level,
    )
    uow.session.add(inst)
    uow.session.flush()
    return inst, InstitutionCredentials(org_id, key_id, secret)


def rotate_institution_secret(uow: UnitOfWork, org_id: str) -> InstitutionCredentials:
    """Issue a new key id and secret; the old pair stops working at once."""
    inst = institution_by_org_id(uow, org_id)
    if inst is None:
        raise AppError("INSTITUTION_NOT_FOUND")
    inst.key_id = "ak_" + secrets.token_urlsafe(12)
    secret = _new_secret()
    inst.secret_enc = crypto.encrypt(secret, purpose=SECRET_PURPOSE, aad=inst.key_id)
    inst.secret_rotated_at = utcnow()
    uow.session.flush()
    return InstitutionCredentials(inst.org_id, inst.key_id, secret)


def update_institution(
    uow: UnitOfWork, org_id: str, *, status: str | None = None, services: list[str] | None = None
) -> Institution:
    """Disable or re-enable an institution, or change its designation; effective on its next request.

    The workers' institution caches are told after the commit (yibao/auth/institution_cache.py: any
    ORM update of an institution), so a disabled institution's next call, in every worker, answers
    INSTITUTION_DISABLED and a withdrawn service INSTITUTION_NOT_DESIGNATED.
    """
    inst = institution_by_org_id(uow, org_id)
    if inst is None:
        raise AppError("INSTITUTION_NOT_FOUND")
    if services is not None:
        if "online_otc" in services and inst.kind != "online_pharmacy":
            raise AppError(
                "VALIDATION_FAILED", errors={"services": ["online_otc is for online pharmacies only."]}
            )
        inst.services = sorted(set(services))
    if status is not None:
        inst.status = status
    uow.session.flush()
    return inst


def institution_by_org_id(uow: UnitOfWork, org_id: str) -> Institution | None:
    return uow.session.scalar(select(Institution).where(Institution.org_id == org_id))


# Prebuilt, and read as a plain row (no ORM identity map): every signed institution request runs it,
# and building the statement and the ORM object cost more CPU than executing the query.
_BY_KEY_ID = select(Institution.__table__).where(Institution.__table__.c.key_id == bindparam("key_id"))


def institution_by_key_id(uow: UnitOfWork, key_id: str) -> Row[Any] | None:
    """A read-only row of the institution with this key id (columns as attributes), or None."""
    return uow.session.execute(_BY_KEY_ID, {"key_id": key_id}).first()


def institution_secret(inst: Institution | Row[Any]) -> bytes:
    return crypto.decrypt(inst.secret_enc, purpose=SECRET_PURPOSE, aad=inst.key_id).encode()
