"""The usage audit as its person (or a family binder with read_usage) reads it: pages, newest first."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from family_accounts import acting as family
from yibao.db import MAX_ID, UnitOfWork
from yibao.errors import AppError
from yibao.registry import services as registry
from yibao.registry.models import Institution, Person

from .models import UsageRecord

USAGE_PAGE_MAX = 100
# The codes usage_for answers (documented on GET /vouchers/usage).
USAGE_CODES = ("USAGE_CURSOR_INVALID", "NOT_PERMITTED", "BINDING_NOT_ACTIVE", "PERSON_SUSPENDED")


@dataclass(frozen=True)
class InstitutionRef:
    org_id: str
    name: str


@dataclass(frozen=True)
class UsageItem:
    """One verification attempt as its person sees it (no operator name)."""

    at: datetime
    institution: InstitutionRef
    business_type: str
    result: str
    code: str | None
    operator_id: str
    device_id: str
    out_biz_no: str
    acted_by: str | None
    kind: str  # signed | offline (a YO1 code made on the phone)


@dataclass(frozen=True)
class UsagePage:
    items: list[UsageItem]
    next_cursor: str | None


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


def usage_page(uow: UnitOfWork, *, person_id: int, limit: int = 20, cursor: str | None = None) -> UsagePage:
    """One page of a person's verification history, newest first (other domains may call this).

    Raises:
        USAGE_CURSOR_INVALID: the cursor is not one this service returned.
    """
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
        UsageItem(
            at=rec.created_at,
            institution=InstitutionRef(org_id, name),
            business_type=rec.business_type,
            result=rec.result,
            code=rec.code,
            operator_id=rec.operator_id,
            device_id=rec.device_id,
            out_biz_no=rec.out_biz_no,
            acted_by=actor_psn_no,
            kind=rec.kind,
        )
        for rec, org_id, name, actor_psn_no in rows[:limit]
    ]
    next_cursor = _encode_cursor(rows[limit - 1][0].id) if len(rows) > limit else None
    return UsagePage(items, next_cursor)


def usage_for(
    uow: UnitOfWork, *, caller_person_id: int, psn_no: str | None, limit: int, cursor: str | None
) -> UsagePage:
    """The caller's own history, or a family member's when the binding allows read_usage.

    Raises:
        NOT_PERMITTED: no live binding lets the caller read the member's usage (or no such member).
        BINDING_NOT_ACTIVE: the binding is still pending.
        PERSON_SUSPENDED: the caller or the member is suspended (reading a member's usage).
        USAGE_CURSOR_INVALID: see usage_page.
    """
    person_id = caller_person_id
    caller = registry.person_by_id(uow, caller_person_id)
    if psn_no is not None and (caller is None or psn_no != caller.psn_no):
        person_id = family.acting_permission(
            uow, actor_person_id=caller_person_id, member_psn_no=psn_no, action="read_usage"
        )
    return usage_page(uow, person_id=person_id, limit=limit, cursor=cursor)
