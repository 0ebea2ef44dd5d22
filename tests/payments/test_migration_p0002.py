"""Migration p0002 (issue 15) on a database that already holds payments: migrate to p0001, write a paid
and partly refunded order with its items, refund, ledger legs and traceability code, upgrade to the
heads, and check that every row, reference, index and guard is still there and the new columns and
check constraint are in force. SQLite: a fresh file (p0002 rebuilds payment_orders there); PostgreSQL:
a fresh schema of the test database (ALTER TABLE in place)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from payments.models import PaymentOrder
from yibao.config import normalize_database_url
from yibao.db import make_engine
from yibao.migrate import upgrade

AT = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
TABLES = (
    "payment_orders",
    "payment_order_items",
    "payment_refunds",
    "pay_transactions",
    "pay_entries",
    "trace_code_settlements",
    "pay_accounts",
    "pay_grants",
)


def _insert(conn, table: str, **row) -> None:
    cols = ", ".join(row)
    conn.execute(text(f"INSERT INTO {table} ({cols}) VALUES ({', '.join(':' + c for c in row)})"), row)


def _write_v1_payments(conn) -> None:
    """What p0001 held: a person, a pharmacy, an order of 3000 fen paid 2000 account + 1000 cash,
    of which 500 cash refunded, one traceability code settled."""
    _insert(
        conn, "persons", id=1, psn_no="psn_mig0000000001", id_index="idx1", id_number_enc="x",
        name_enc="x", name_index="x", id_number_masked="x", name_masked="x", birth_date=date(1980, 1, 1),
        insurance_type="employee", insured_region="532900", status="active", opening_balance_fen=5000,
        created_at=AT, updated_at=AT,
    )  # fmt: skip
    _insert(
        conn, "institutions", id=1, org_id="org_mig1", name="药房", kind="pharmacy", region="532900",
        services='["02121"]', key_id="ak_mig1", secret_enc="x", status="active", secret_rotated_at=AT,
        created_at=AT,
    )  # fmt: skip
    for acct in (
        {"id": 1, "kind": "personal", "person_id": 1, "balance_fen": 3000},
        {"id": 2, "kind": "clearing", "institution_id": 1, "balance_fen": 0},
        {"id": 3, "kind": "cash", "system_name": "cash", "balance_fen": 0},
        {"id": 4, "kind": "funding", "system_name": "contributions", "balance_fen": 0},
    ):
        _insert(conn, "pay_accounts", created_at=AT, **acct)
    _insert(
        conn, "pay_grants", id=1, grant_key="pa_mig1", source="pay_auth", purpose="online_otc", person_id=1,
        expires_at=AT, used_at=AT, created_at=AT,
    )  # fmt: skip
    _insert(
        conn, "payment_orders", id=1, pay_order_id="po_mig1", institution_id=1, payer_person_id=1, grant_id=1,
        purpose="online_otc", merchant_order_no="MO1", account_only=False, status="partially_refunded",
        drug_fen=3000, delivery_fee_fen=0, total_fen=3000, account_pay_fen=2000, mutual_aid_pay_fen=0,
        cash_pay_fen=1000, refunded_fen=500, account_refunded_fen=0, mutual_aid_refunded_fen=0,
        cash_refunded_fen=500, created_at=AT, paid_at=AT, updated_at=AT,
    )  # fmt: skip
    _insert(
        conn, "payment_order_items", id=1, order_id=1, line_no=1, drug_code="XA01", drug_name="布洛芬",
        otc=True, quantity=1, unit_price_fen=3000, trace_codes='["81234567890123456789"]',
    )  # fmt: skip
    _insert(
        conn, "payment_refunds", id=1, refund_id="rf_mig1", order_id=1, institution_id=1, amount_fen=500,
        account_refund_fen=0, mutual_aid_refund_fen=0, cash_refund_fen=500, reason="退货",
        released_trace_codes="[]", status="succeeded", created_at=AT,
    )  # fmt: skip
    _insert(conn, "trace_code_settlements", id=1, code="81234567890123456789", order_id=1, settled_at=AT)
    legs = {
        1: ("contribution", None, None, [(4, -5000), (1, 5000)]),
        2: ("payment", 1, None, [(1, -2000), (3, -1000), (2, 3000)]),
        3: ("refund", 1, 1, [(3, 500), (2, -500)]),
    }
    entry = 0
    for txn, (kind, order_id, refund_id, entries) in legs.items():
        _insert(
            conn, "pay_transactions", id=txn, kind=kind, order_id=order_id, refund_id=refund_id, sealed=False,
            created_at=AT,
        )  # fmt: skip
        for account_id, fen in entries:
            entry += 1
            _insert(
                conn, "pay_entries", id=entry, transaction_id=txn, account_id=account_id, amount_fen=fen,
                created_at=AT,
            )  # fmt: skip
        conn.execute(text("UPDATE pay_transactions SET sealed = :t WHERE id = :id"), {"t": True, "id": txn})


def _snapshot(conn) -> dict[str, list[tuple]]:
    return {t: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {t} ORDER BY 1"))] for t in TABLES}


def test_p0002_keeps_existing_payments(empty_url: str, is_postgres: bool):
    upgrade(empty_url, "p0001")
    engine = make_engine(normalize_database_url(empty_url))  # SQLite: foreign keys on, as the app runs
    with engine.begin() as conn:
        _write_v1_payments(conn)
    with engine.connect() as conn:
        before = _snapshot(conn)
        indexes_before = {i["name"] for i in inspect(conn).get_indexes("payment_orders")}
    assert len(before["pay_entries"]) == 7

    upgrade(empty_url, "heads")

    with engine.connect() as conn:
        after = _snapshot(conn)
        for table in TABLES:
            if table != "payment_orders":
                assert after[table] == before[table], table
        order = conn.execute(
            text(
                "SELECT pay_order_id, status, total_fen, account_pay_fen, cash_pay_fen, refunded_fen,"
                " fund_pay_fen, med_type FROM payment_orders"
            )
        ).one()
        assert tuple(order) == ("po_mig1", "partially_refunded", 3000, 2000, 1000, 500, 0, None)
        insp = inspect(conn)
        assert indexes_before <= {i["name"] for i in insp.get_indexes("payment_orders")}
        uniques = {u["name"] for u in insp.get_unique_constraints("payment_orders")}
        assert {
            "uq_payment_orders_pay_order_id",
            "uq_payment_orders_institution_id_merchant_order_no",
        } <= uniques
        referencing = {
            (t, fk["referred_table"])
            for t in ("payment_order_items", "payment_refunds", "pay_transactions", "trace_code_settlements")
            for fk in insp.get_foreign_keys(t)
        }
        assert {(t, "payment_orders") for t in ("payment_order_items", "payment_refunds")} <= referencing
        if not is_postgres:
            assert conn.execute(text("PRAGMA foreign_key_check")).all() == []
            assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"

    # The new check: the four parts sum to the total, the fund part included.
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("UPDATE payment_orders SET fund_pay_fen = 1"))
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE payment_orders SET fund_pay_fen = 1000, cash_pay_fen = 0"
                " WHERE pay_order_id = 'po_mig1'"
            )
        )
    # The ledger guards still hold after the rebuild; the unique index still guards the code.
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(text("UPDATE pay_entries SET amount_fen = 0 WHERE id = 1"))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        _insert(conn, "trace_code_settlements", id=2, code="81234567890123456789", order_id=1, settled_at=AT)
    # The models of today read the old row.
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        o = session.query(PaymentOrder).one()
        assert (o.pay_order_id, o.fund_pay_fen, o.med_type, o.refunded_fen) == ("po_mig1", 1000, None, 500)
    engine.dispose()


def test_a_dangling_reference_never_survives_an_upgrade(empty_url: str, is_postgres: bool):
    """SQLite migrations run with foreign keys off (to rebuild referenced tables); each one checks them
    before it commits, so a broken reference stops the upgrade instead of being carried on. PostgreSQL
    keeps its foreign keys on throughout: the row cannot even be written."""
    upgrade(empty_url, "p0001")
    engine = create_engine(normalize_database_url(empty_url))  # SQLite: foreign keys off (no pragma)
    item = dict(
        id=1, order_id=99, line_no=1, drug_code="X", drug_name="x", otc=True, quantity=1, unit_price_fen=1,
        trace_codes="[]",
    )  # fmt: skip
    if is_postgres:
        with pytest.raises(IntegrityError), engine.begin() as conn:
            _insert(conn, "payment_order_items", **item)
        engine.dispose()
        return
    with engine.begin() as conn:
        _insert(conn, "payment_order_items", **item)
    engine.dispose()
    with pytest.raises(RuntimeError, match="left broken foreign keys"):
        upgrade(empty_url, "heads")
