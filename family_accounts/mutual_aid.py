"""Family mutual aid (个人账户家庭共济): a holder lets a close relative draw on their personal account.

A filing moves money only once the MEMBER approved it from their own face-verified activated
account (pending -> active, as for adult bindings); pending filings expire after 7 days. Until the
member approves, the holder learns nothing about them: a filing for an unknown psn_no, a resident,
a suspended or not-activated person and a valid member is answered alike (same work, same shape).
A filing for an unknown psn_no is stored with no member (member_person_id NULL): nobody can see,
approve or decline it, and it expires like any other (a database check keeps it from becoming active).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from yibao.db import UnitOfWork
from yibao.errors import AppError
from yibao.registry.models import Person

from . import clock
from . import errors as _errors  # noqa: F401 - registers the family codes
from .lifecycle import PENDING_TTL
from .models import LIVE_STATUSES, MutualAidFiling, new_public_no
from .queries import PERSON_ID_BY_PSN_NO, filings_of, lock_person, people

# 个人账户家庭共济: spouse, parents, children, siblings, grandparents and grandchildren (both sides:
# 祖父母/外祖父母 and 孙子女/外孙子女 are both "grandparent"/"grandchild").
MUTUAL_AID_RELATIONSHIPS = ("spouse", "parent", "child", "sibling", "grandparent", "grandchild")


@dataclass(frozen=True)
class Party:
    """One side of a filing as shown; the masked fields are None while the member is not revealed."""

    psn_no: str
    name_masked: str | None = None
    id_number_masked: str | None = None


def _party(p: Person) -> Party:
    return Party(p.psn_no, p.name_masked, p.id_number_masked)


@dataclass(frozen=True)
class FilingView:
    """A mutual-aid filing as its holder or member sees it, with its status at the time of reading."""

    filing: MutualAidFiling
    role: str  # holder | member
    status: str
    holder: Party
    member: Party


def effective_status(f: MutualAidFiling, now: datetime) -> str:
    """The filing's status at `now`: a pending filing past its expiry is expired, written or not."""
    if f.status == "pending" and f.expires_at is not None and f.expires_at <= now:
        return "expired"
    return f.status


def _settle(f: MutualAidFiling, now: datetime) -> None:
    """Write the expiry the clock has made due."""
    if effective_status(f, now) != f.status:
        f.status = "expired"


def _leave(f: MutualAidFiling, status: str) -> None:
    f.status = status
    f.expires_at = None


def _view(f: MutualAidFiling, person_id: int, parties: dict[int, Person], now: datetime) -> FilingView:
    """The holder sees the member's masked name and ID number only once the member approved."""
    role = "holder" if f.holder_person_id == person_id else "member"
    holder = _party(parties[f.holder_person_id])
    if f.member_person_id is not None and (role == "member" or f.approved_at is not None):
        member = _party(parties[f.member_person_id])
    else:
        member = Party(f.member_psn_no)
    return FilingView(f, role, effective_status(f, now), holder, member)


def create_mutual_aid_filing(
    uow: UnitOfWork,
    *,
    holder_person_id: int,
    member_psn_no: str,
    relationship: str,
    now: datetime | None = None,
) -> FilingView:
    """The account holder asks a close relative to accept sharing the holder's personal account.

    The filing is pending until the member approves it; it reveals nothing about the member. Every
    refusal depends on the request and the holder alone, never on whether the psn_no exists.

    Raises: RELATIONSHIP_NOT_ALLOWED, HOLDER_HAS_NO_PERSONAL_ACCOUNT, SELF_NOT_ALLOWED,
    MUTUAL_AID_FILING_EXISTS (the holder's own pending or active filing for this psn_no).
    """
    now = now or clock.now()
    if relationship not in MUTUAL_AID_RELATIONSHIPS:
        raise AppError("RELATIONSHIP_NOT_ALLOWED", allowed=list(MUTUAL_AID_RELATIONSHIPS))
    holder = lock_person(uow, holder_person_id)
    if not holder.has_personal_account:
        raise AppError("HOLDER_HAS_NO_PERSONAL_ACCOUNT")
    if member_psn_no == holder.psn_no:
        raise AppError("SELF_NOT_ALLOWED")
    mine = uow.session.scalars(
        select(MutualAidFiling)
        .where(
            MutualAidFiling.holder_person_id == holder.id,
            MutualAidFiling.member_psn_no == member_psn_no,
            MutualAidFiling.status.in_(LIVE_STATUSES),
        )
        .with_for_update(key_share=True)
    ).all()
    for f in mine:
        _settle(f, now)
    existing = next((f for f in mine if f.status in LIVE_STATUSES), None)
    if existing is not None:
        raise AppError("MUTUAL_AID_FILING_EXISTS", filing_id=existing.filing_no)
    # The same one-column lookup and the same insert whether or not the psn_no exists; only the
    # member column differs (NULL for an unknown psn_no) and nothing of it is answered.
    member_id = uow.session.scalar(PERSON_ID_BY_PSN_NO, {"psn_no": member_psn_no})
    filing = MutualAidFiling(
        filing_no=new_public_no("maf_"),
        holder_person_id=holder.id,
        member_person_id=member_id,
        member_psn_no=member_psn_no,
        relationship=relationship,
        status="pending",
        created_at=now,
        expires_at=now + PENDING_TTL,
    )
    uow.session.add(filing)
    try:
        uow.session.flush()
    except IntegrityError as exc:  # a concurrent filing for the same psn_no won
        uow.rollback()
        raise AppError("MUTUAL_AID_FILING_EXISTS") from exc
    return FilingView(filing, "holder", "pending", _party(holder), Party(member_psn_no))


def _load(uow: UnitOfWork, filing_no: str, now: datetime) -> MutualAidFiling | None:
    """Load and lock a filing by its public id, its due expiry written."""
    f = uow.session.scalar(
        select(MutualAidFiling).where(MutualAidFiling.filing_no == filing_no).with_for_update(key_share=True)
    )
    if f is not None:
        _settle(f, now)
    return f


def _member_decides(uow: UnitOfWork, filing_no: str, person_id: int, now: datetime) -> MutualAidFiling:
    """The pending filing the caller, as its member, may approve or decline; anyone else gets 404."""
    f = _load(uow, filing_no, now)
    if f is None or f.member_person_id is None or f.member_person_id != person_id:
        raise AppError("MUTUAL_AID_FILING_NOT_FOUND")
    if f.status != "pending":
        raise AppError("MUTUAL_AID_FILING_NOT_PENDING", filing_status=f.status)
    return f


def _as_seen_by(uow: UnitOfWork, f: MutualAidFiling, person_id: int, now: datetime) -> FilingView:
    uow.session.flush()
    return _view(f, person_id, people(uow, {f.holder_person_id, f.member_person_id}), now)


def approve_mutual_aid_filing(
    uow: UnitOfWork, *, filing_no: str, person_id: int, now: datetime | None = None
) -> FilingView:
    """The member, from their own activated account, approves: the holder's account may now pay.

    Raises: MUTUAL_AID_FILING_NOT_FOUND (anyone but the member), MUTUAL_AID_FILING_NOT_PENDING.
    """
    now = now or clock.now()
    f = _member_decides(uow, filing_no, person_id, now)
    _leave(f, "active")
    f.approved_at = now
    return _as_seen_by(uow, f, person_id, now)


def decline_mutual_aid_filing(
    uow: UnitOfWork, *, filing_no: str, person_id: int, now: datetime | None = None
) -> FilingView:
    """The member declines; the holder may file again.

    Raises: MUTUAL_AID_FILING_NOT_FOUND (anyone but the member), MUTUAL_AID_FILING_NOT_PENDING.
    """
    now = now or clock.now()
    f = _member_decides(uow, filing_no, person_id, now)
    _leave(f, "declined")
    f.declined_at = now
    return _as_seen_by(uow, f, person_id, now)


def withdraw_mutual_aid_filing(
    uow: UnitOfWork, *, filing_no: str, person_id: int, now: datetime | None = None
) -> FilingView:
    """Either side ends a pending or active filing: the holder takes back the offer, or the member
    withdraws the consent they gave (consent is revocable at any time). Payments started after this
    commit no longer draw on the holder's account; `withdrawn_by` records which side ended it.
    Withdrawing one that is over changes nothing.

    Raises: MUTUAL_AID_FILING_NOT_FOUND (anyone but the holder and the member).
    """
    now = now or clock.now()
    f = _load(uow, filing_no, now)
    if f is None or person_id not in (f.holder_person_id, f.member_person_id):
        raise AppError("MUTUAL_AID_FILING_NOT_FOUND")
    if f.status in LIVE_STATUSES:
        _leave(f, "withdrawn")
        f.withdrawn_at = now
        f.withdrawn_by = "holder" if person_id == f.holder_person_id else "member"
    return _as_seen_by(uow, f, person_id, now)


def list_mutual_aid_filings(
    uow: UnitOfWork, *, person_id: int, now: datetime | None = None
) -> list[FilingView]:
    """Filings where the person is the holder or the member, newest first, as of now (read-only)."""
    now = now or clock.now()
    rows = uow.session.scalars(
        select(MutualAidFiling)
        .where(filings_of(person_id))
        .order_by(MutualAidFiling.created_at.desc(), MutualAidFiling.id.desc())
    ).all()
    parties = people(uow, {p for f in rows for p in (f.holder_person_id, f.member_person_id)})
    return [_view(f, person_id, parties, now) for f in rows]


def sweep(uow: UnitOfWork, *, now: datetime | None = None) -> dict[str, int]:
    """Write the expiry of every pending filing past its 7 days; returns {"expired": n} (or {})."""
    now = now or clock.now()
    due = uow.session.scalars(
        select(MutualAidFiling)
        .where(MutualAidFiling.status == "pending", MutualAidFiling.expires_at <= now)
        .order_by(MutualAidFiling.id)
        .with_for_update(key_share=True, skip_locked=True)
    ).all()
    for f in due:
        _settle(f, now)
    uow.session.flush()
    return {"expired": len(due)} if due else {}
