"""The ledger's rules are enforced by the database; accounts, entries and contributions through the API."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from payments import ledger
from payments.models import Account, Entry, LedgerTransaction
from tests.support import problem
from yibao.db import db


def _person_account(app, psn_no):
    from yibao.registry import services as registry

    with app.app_context(), db.uow(readonly=True) as uow:
        person = registry.person_by_psn_no(uow, psn_no)
        return ledger.personal_account(uow, person.id).id


def test_opening_balance_posted_from_funding(app, yb, pay):
    p = yb.person(balance=12345)
    assert pay.balance(p) == 12345
    entries = yb.as_user(p, "GET", "/accounts/me/entries").get_json()
    assert [(e["amount_fen"], e["kind"]) for e in entries["items"]] == [(12345, "opening")]
    with app.app_context(), db.uow(readonly=True) as uow:
        fund = uow.session.scalar(select(Account).where(Account.system_name == "funding"))
        assert ledger.account_entries_sum(uow, fund.id) == -12345
    pay.reconcile()


def test_resident_has_no_personal_account(yb):
    p = yb.person(insurance_type="resident")
    problem(yb.as_user(p, "GET", "/accounts/me"), 422, "NO_PERSONAL_ACCOUNT")


def test_entries_are_paginated(yb, pay):
    p = yb.person(balance=100)
    for year in range(2020, 2025):
        r = yb.admin("POST", "/contributions", {"psn_no": p.psn_no, "year": year, "amount_fen": year})
        assert r.status_code == 201, r.get_json()
    seen, cursor = [], None
    while True:
        q = "/accounts/me/entries?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = yb.as_user(p, "GET", q).get_json()
        assert len(page["items"]) <= 2
        seen += [e["amount_fen"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [2024, 2023, 2022, 2021, 2020, 100]
    assert pay.balance(p) == 100 + sum(range(2020, 2025))


def test_contribution_is_idempotent_by_person_and_year(app, yb, pay):
    p = yb.person(balance=0)
    body = {"psn_no": p.psn_no, "year": 2026, "amount_fen": 50000}
    assert yb.admin("POST", "/contributions", body).status_code == 201
    again = yb.admin("POST", "/contributions", body)
    assert again.status_code == 200
    assert again.get_json()["created"] is False
    problem(yb.admin("POST", "/contributions", {**body, "amount_fen": 1}), 409, "CONTRIBUTION_CONFLICT")
    assert pay.balance(p) == 50000
    with app.app_context(), db.uow(readonly=True) as uow:
        n = uow.session.scalar(select(func.count()).where(LedgerTransaction.kind == "contribution"))
    assert n == 1
    pay.reconcile()


def test_contribution_cli(runner, yb, pay):
    p = yb.person(balance=0)
    args = ["payments", "credit-contribution", p.psn_no, "--year", "2026", "--amount-fen", "700"]
    first = runner.invoke(args=args)
    assert first.exit_code == 0, first.output
    assert '"created": true' in first.output
    second = runner.invoke(args=args)
    assert second.exit_code == 0, second.output
    assert '"created": false' in second.output
    assert pay.balance(p) == 700
    bad = runner.invoke(
        args=["payments", "credit-contribution", "nobody", "--year", "2026", "--amount-fen", "1"]
    )
    assert bad.exit_code != 0
    assert "PERSON_NOT_FOUND" in bad.output


def test_contribution_bad_input(yb):
    p = yb.person(insurance_type="resident")
    problem(
        yb.admin("POST", "/contributions", {"psn_no": p.psn_no, "year": 2026, "amount_fen": 5}),
        422,
        "NO_PERSONAL_ACCOUNT",
    )
    problem(
        yb.admin("POST", "/contributions", {"psn_no": p.psn_no, "year": 2026, "amount_fen": 0}),
        422,
        "VALIDATION_FAILED",
    )
    problem(
        yb.admin("POST", "/contributions", {"psn_no": p.psn_no, "year": 2026, "amount_fen": 2**53}),
        422,
        "AMOUNT_TOO_LARGE",
    )


def _raw(app, sql, **params):
    with app.app_context(), db.uow() as uow:
        uow.session.execute(text(sql), params)
        uow.commit()


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE pay_entries SET amount_fen = amount_fen + 1",
        "DELETE FROM pay_entries",
        "UPDATE pay_transactions SET kind = 'refund'",
        "DELETE FROM pay_transactions",
    ],
)
def test_ledger_is_append_only(app, yb, sql):
    yb.person(balance=100)
    with pytest.raises(DBAPIError) as exc:
        _raw(app, sql)
    assert "append-only" in str(exc.value)


def test_unbalanced_seal_is_refused(app, yb):
    yb.person(balance=100)
    with app.app_context(), db.uow() as uow:
        acct = uow.session.scalar(select(Account).where(Account.kind == "personal"))
        txn = LedgerTransaction(kind="opening", sealed=False)
        uow.session.add(txn)
        uow.session.flush()
        uow.session.add(Entry(transaction_id=txn.id, account_id=acct.id, amount_fen=1))
        uow.session.flush()
        with pytest.raises(DBAPIError) as exc:
            uow.session.execute(
                text("UPDATE pay_transactions SET sealed = true WHERE id = :i"), {"i": txn.id}
            )
        assert "unbalanced" in str(exc.value)


def test_no_entries_into_a_sealed_transaction(app, yb):
    yb.person(balance=100)
    with app.app_context(), db.uow() as uow:
        txn_id, acct_id = uow.session.execute(select(Entry.transaction_id, Entry.account_id).limit(1)).one()
        with pytest.raises(DBAPIError) as exc:
            uow.session.add(Entry(transaction_id=txn_id, account_id=acct_id, amount_fen=0))
            uow.session.flush()
        assert "sealed" in str(exc.value)


def test_postgres_checks_the_sum_at_commit(app, yb, is_postgres):
    """On PostgreSQL a deferred constraint trigger refuses an unbalanced transaction even if never sealed."""
    if not is_postgres:
        pytest.skip("deferred constraint triggers are PostgreSQL's; SQLite relies on sealing (tested above)")
    yb.person(balance=100)
    with app.app_context(), db.uow() as uow:
        acct = uow.session.scalar(select(Account).where(Account.kind == "personal"))
        txn = LedgerTransaction(kind="opening", sealed=False)
        uow.session.add(txn)
        uow.session.flush()
        uow.session.add(Entry(transaction_id=txn.id, account_id=acct.id, amount_fen=5))
        uow.session.flush()  # accepted for now: the check is deferred to COMMIT
        with pytest.raises(DBAPIError) as exc:
            uow.commit()
        assert "unbalanced" in str(exc.value)


def test_personal_balance_cannot_go_negative_even_by_hand(app, yb):
    p = yb.person(balance=100)
    acct_id = _person_account(app, p.psn_no)
    with pytest.raises(DBAPIError):
        _raw(app, "UPDATE pay_accounts SET balance_fen = -1 WHERE id = :i", i=acct_id)
