"""Personal accounts: opened for employees on person_created, read, listed, credited yearly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from yibao import hooks
from yibao.db import UnitOfWork
from yibao.errors import AppError
from yibao.registry import services as registry
from yibao.registry.models import Person

from . import ledger, money
from .models import Account, Entry, LedgerTransaction, PaymentOrder


def checked_amount(fen: int) -> int:
    """An amount within 0..2^53-1 fen.

    Raises: AMOUNT_TOO_LARGE.
    """
    try:
        return money.check_amount(fen)
    except money.AmountTooLarge as exc:
        raise AppError("AMOUNT_TOO_LARGE") from exc


@hooks.on("person_created")
def open_account(uow: UnitOfWork, person: Person, opening_balance_fen: int) -> None:
    """Employees get a personal account; the opening balance comes from the funding account.

    Raises: AMOUNT_TOO_LARGE.
    """
    if person.insurance_type != "employee":
        return
    acct = ledger.open_personal_account(uow, person.id)
    if opening_balance_fen:
        checked_amount(opening_balance_fen)
        fund = ledger.system_account(uow, ledger.FUNDING)
        ledger.post(
            uow,
            kind="opening",
            legs=[(fund.id, -opening_balance_fen), (acct.id, opening_balance_fen)],
            natural_key=f"opening:{person.id}",
            personal_ids=[acct.id],
        )


def account_of(uow: UnitOfWork, person_id: int) -> Account:
    """The person's personal account.

    Raises: NO_PERSONAL_ACCOUNT.
    """
    acct = ledger.personal_account(uow, person_id)
    if acct is None:
        raise AppError("NO_PERSONAL_ACCOUNT")
    return acct


@dataclass(frozen=True)
class EntryView:
    entry_id: int
    amount_fen: int
    kind: str
    pay_order_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class EntryPage:
    items: list[EntryView]
    next_cursor: int | None


def list_entries(uow: UnitOfWork, account_id: int, *, limit: int, before: int | None) -> EntryPage:
    """Newest first, keyset-paginated by entry id (cursor = the last id seen)."""
    stmt = (
        select(
            Entry.id, Entry.amount_fen, LedgerTransaction.kind, PaymentOrder.pay_order_id, Entry.created_at
        )
        .join(LedgerTransaction, LedgerTransaction.id == Entry.transaction_id)
        .outerjoin(PaymentOrder, PaymentOrder.id == LedgerTransaction.order_id)
        .where(Entry.account_id == account_id)
        .order_by(Entry.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        stmt = stmt.where(Entry.id < before)
    rows = [EntryView(*r) for r in uow.session.execute(stmt)]
    more = len(rows) > limit
    rows = rows[:limit]
    return EntryPage(rows, rows[-1].entry_id if more and rows else None)


@dataclass(frozen=True)
class ContributionResult:
    psn_no: str
    year: int
    amount_fen: int
    balance_fen: int
    created: bool


def credit_contribution(uow: UnitOfWork, *, psn_no: str, year: int, amount_fen: int) -> ContributionResult:
    """Credit a yearly contribution once per (person, year); a replay with the same amount is a no-op.

    Raises: PERSON_NOT_FOUND, AMOUNT_TOO_LARGE, NO_PERSONAL_ACCOUNT, CONTRIBUTION_CONFLICT.
    """
    person = registry.require_person(uow, psn_no)
    checked_amount(amount_fen)
    acct = account_of(uow, person.id)
    key = f"contribution:{person.id}:{year}"
    existing = uow.session.scalar(select(LedgerTransaction.id).where(LedgerTransaction.natural_key == key))
    created = False
    if existing is None:
        try:
            with uow.session.begin_nested():
                fund = ledger.system_account(uow, ledger.FUNDING)
                ledger.post(
                    uow,
                    kind="contribution",
                    legs=[(fund.id, -amount_fen), (acct.id, amount_fen)],
                    natural_key=key,
                    memo=f"yearly contribution {year}",
                    personal_ids=[acct.id],
                )
            created = True
        except IntegrityError:  # a concurrent credit of the same person and year won
            existing = uow.session.scalar(
                select(LedgerTransaction.id).where(LedgerTransaction.natural_key == key)
            )
    if not created:
        credited = uow.session.scalar(
            select(Entry.amount_fen).where(Entry.transaction_id == existing, Entry.account_id == acct.id)
        )
        if credited != amount_fen:
            raise AppError("CONTRIBUTION_CONFLICT", credited_fen=credited)
    uow.session.refresh(acct)
    return ContributionResult(psn_no, year, amount_fen, acct.balance_fen, created)
