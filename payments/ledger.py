"""Double-entry ledger: accounts, balanced append-only transactions, balance reads. No Flask here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Integer, bindparam, func, select
from sqlalchemy.exc import IntegrityError

from yibao.db import UnitOfWork, utcnow
from yibao.errors import AppError
from yibao.prepared import Prepared, PreparedRows

from .models import Account, Entry, LedgerTransaction

FUNDING = "funding"  # where opening balances and yearly contributions come from (the insurance fund)
CASH = "cash"  # the payer's own money paid at the institution (outside the insurance accounts)


def system_account(uow: UnitOfWork, name: str) -> Account:
    """The funding or cash account, created on first use (races end in the unique system_name)."""
    acct = uow.session.scalar(select(Account).where(Account.system_name == name))
    if acct is not None:
        return acct
    try:
        with uow.session.begin_nested():
            acct = Account(kind=name, system_name=name, balance_fen=0)
            uow.session.add(acct)
    except IntegrityError:
        acct = uow.session.scalar(select(Account).where(Account.system_name == name))
    assert acct is not None
    return acct


def clearing_account(uow: UnitOfWork, institution_id: int) -> Account:
    """The institution's clearing account, created on first use."""
    acct = uow.session.scalar(select(Account).where(Account.institution_id == institution_id))
    if acct is not None:
        return acct
    try:
        with uow.session.begin_nested():
            acct = Account(kind="clearing", institution_id=institution_id, balance_fen=0)
            uow.session.add(acct)
    except IntegrityError:
        acct = uow.session.scalar(select(Account).where(Account.institution_id == institution_id))
    assert acct is not None
    return acct


def personal_account(uow: UnitOfWork, person_id: int) -> Account | None:
    """The person's personal account, or None (resident insurance has none)."""
    return uow.session.scalar(select(Account).where(Account.person_id == person_id))


def open_personal_account(uow: UnitOfWork, person_id: int) -> Account:
    """Open (or return) the personal account of an employee-insured person."""
    acct = personal_account(uow, person_id)
    if acct is None:
        acct = Account(kind="personal", person_id=person_id, balance_fen=0)
        uow.session.add(acct)
        uow.session.flush()
    return acct


# Prebuilt Core statements of the payment hot path: built once, their SQL compiled and cached once,
# so a payment spends no CPU on statement construction (which cost more than the round trips).
_ACCOUNTS = Account.__table__
_TXNS = LedgerTransaction.__table__
_LOCK_OF_PERSONS = (
    select(_ACCOUNTS.c.person_id, _ACCOUNTS.c.id, _ACCOUNTS.c.balance_fen)
    .where(_ACCOUNTS.c.person_id.in_(bindparam("person_ids", expanding=True)))
    .order_by(_ACCOUNTS.c.id)
    .with_for_update()
)
# The payment hot path's statements on the driver's cursor (yibao/prepared.py): the usual payer
# without mutual-aid holders locks one account (an IN list cannot be prebuilt), and the legs are one
# multi-row INSERT.
_LOCK_OF_PERSON = Prepared(
    select(_ACCOUNTS.c.person_id, _ACCOUNTS.c.id, _ACCOUNTS.c.balance_fen)
    # typed here: a foreign key column takes persons.id's type only once the registry's models load
    .where(_ACCOUNTS.c.person_id == bindparam("person_id", type_=Integer))
    .with_for_update(),
    ("person_id",),
)
_MOVE_BALANCE = Prepared(
    _ACCOUNTS.update()
    .where(_ACCOUNTS.c.id == bindparam("acct"), _ACCOUNTS.c.balance_fen + bindparam("fen") >= 0)
    .values(balance_fen=_ACCOUNTS.c.balance_fen + bindparam("fen")),
    ("acct", "fen"),
)
_INSERT_TXN = Prepared(
    _TXNS.insert().returning(_TXNS.c.id),
    ("kind", "natural_key", "order_id", "refund_id", "memo", "sealed", "created_at"),
)
_INSERT_ENTRIES = PreparedRows(
    lambda values: Entry.__table__.insert().values(values),
    Entry.__table__,
    ("transaction_id", "account_id", "amount_fen", "created_at"),
)
_SEAL = Prepared(_TXNS.update().where(_TXNS.c.id == bindparam("txn")).values(sealed=True), ("txn",))


def lock_accounts_of(uow: UnitOfWork, person_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """Lock the personal accounts of these persons in one round trip: {person_id: (account_id, balance)}.

    PostgreSQL: FOR UPDATE in id order, so concurrent payers sharing holders never deadlock.
    """
    if not person_ids:
        return {}
    distinct = sorted(set(person_ids))
    if len(distinct) == 1:
        rows = _LOCK_OF_PERSON.execute(uow, {"person_id": distinct[0]})
    else:
        rows = uow.core().execute(_LOCK_OF_PERSONS, {"person_ids": distinct})
    return {row.person_id: (row.id, row.balance_fen) for row in rows}


def settlement_accounts(uow: UnitOfWork, institution_id: int) -> tuple[int, int]:
    """(clearing account of the institution, cash account) ids, in one round trip when both exist."""
    rows = uow.session.execute(
        select(Account.id, Account.kind).where(
            (Account.institution_id == institution_id) | (Account.system_name == CASH)
        )
    ).all()
    by_kind = {kind: id_ for id_, kind in rows}
    clearing = by_kind.get("clearing") or clearing_account(uow, institution_id).id
    cash = by_kind.get("cash") or system_account(uow, CASH).id
    return clearing, cash


def lock_personal_accounts(uow: UnitOfWork, account_ids: Sequence[int]) -> dict[int, int]:
    """Lock the rows (PostgreSQL: FOR UPDATE, in id order so payers never deadlock) and read balances."""
    if not account_ids:
        return {}
    stmt = (
        select(Account.id, Account.balance_fen)
        .where(Account.id.in_(sorted(set(account_ids))))
        .order_by(Account.id)
        .with_for_update()
    )
    return {row.id: row.balance_fen for row in uow.session.execute(stmt)}


def post(
    uow: UnitOfWork,
    *,
    kind: str,
    legs: Sequence[tuple[int, int]],
    natural_key: str | None = None,
    order_id: int | None = None,
    refund_id: int | None = None,
    memo: str | None = None,
    personal_ids: Sequence[int] = (),
    at: datetime | None = None,
) -> int:
    """Post a balanced transaction: insert the legs, move personal balances, seal.

    `personal_ids` are the accounts among the legs whose balance column must follow the entries;
    their debit is a conditional UPDATE, so a balance can never go below zero even if a caller
    computed the split from a stale read.
    """
    legs = [(a, f) for a, f in legs if f != 0]
    if sum(f for _, f in legs) != 0:
        raise ValueError("unbalanced legs")
    personal = set(personal_ids)
    for account_id, fen in legs:
        # the debit is conditional: no row changed means the balance would go below zero
        if account_id in personal and _MOVE_BALANCE.run(uow, {"acct": account_id, "fen": fen}) != 1:
            raise AppError("INSUFFICIENT_BALANCE")
    created_at = at or utcnow()
    # Core statements on the connection: this is the payment hot path, the ORM adds nothing here.
    (txn_id,) = _INSERT_TXN.execute(
        uow,
        {
            "kind": kind,
            "natural_key": natural_key,
            "order_id": order_id,
            "refund_id": refund_id,
            "memo": memo,
            "sealed": False,
            "created_at": created_at,
        },
    )[0]
    if legs:
        _INSERT_ENTRIES.run(
            uow,
            [
                {"transaction_id": txn_id, "account_id": a, "amount_fen": f, "created_at": created_at}
                for a, f in legs
            ],
        )
    # Sealing asks the database to check SUM(legs) = 0; afterwards the transaction is immutable.
    _SEAL.run(uow, {"txn": txn_id})
    return txn_id


def account_entries_sum(uow: UnitOfWork, account_id: int) -> int:
    """SUM of an account's entries (used by reconciliation, never on the payment path)."""
    return int(
        uow.session.scalar(
            select(func.coalesce(func.sum(Entry.amount_fen), 0)).where(Entry.account_id == account_id)
        )
    )
