"""Migration f0002 (issue 10): existing ACTIVE filings become PENDING with a fresh 7-day expiry.

Run with alembic from an empty database: a filing is written at the previous revision (f0001),
then the upgrade runs. SQLite: a fresh file; PostgreSQL: a fresh schema of the test database.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text

from yibao.config import normalize_database_url
from yibao.migrate import downgrade, upgrade


def _person(conn, n: int) -> tuple[int, str]:
    psn_no = f"psn_mig{n:013d}"
    now = datetime.now(UTC)
    conn.execute(
        text(
            "INSERT INTO persons (id, psn_no, id_index, id_number_enc, name_enc, name_index,"
            " id_number_masked, name_masked, birth_date, insurance_type, insured_region, status,"
            " opening_balance_fen,"
            " created_at, updated_at) VALUES (:id, :psn_no, :idx, 'x', 'x', 'x', 'x', 'x', :born,"
            " 'employee', '110105', 'active', 0, :now, :now)"
        ),
        {"id": n, "psn_no": psn_no, "idx": f"idx{n}", "born": date(1980, 1, 1), "now": now},
    )
    return n, psn_no


def test_existing_active_filings_become_pending(empty_url: str):
    upgrade(empty_url, "f0001")
    engine = create_engine(normalize_database_url(empty_url))
    created = datetime(2024, 5, 1, tzinfo=UTC)
    with engine.begin() as conn:
        holder, _ = _person(conn, 1)
        mother, mother_psn = _person(conn, 2)
        father, father_psn = _person(conn, 3)
        for no, member, status in (("maf_active", mother, "active"), ("maf_withdrawn", father, "withdrawn")):
            conn.execute(
                text(
                    "INSERT INTO mutual_aid_filings (filing_no, holder_person_id, member_person_id,"
                    " relationship, status, created_at) VALUES (:no, :h, :m, 'parent', :status, :at)"
                ),
                {"no": no, "h": holder, "m": member, "status": status, "at": created},
            )
    before = datetime.now(UTC)
    upgrade(empty_url, "heads")
    after = datetime.now(UTC)
    with engine.connect() as conn:
        rows = {
            r.filing_no: r
            for r in conn.execute(
                text(
                    "SELECT filing_no, status, member_psn_no, expires_at, approved_at FROM mutual_aid_filings"
                )
            )
        }
    engine.dispose()
    active = rows["maf_active"]
    assert active.status == "pending" and active.approved_at is None
    assert active.member_psn_no == mother_psn
    expires = (
        active.expires_at
        if isinstance(active.expires_at, datetime)
        else datetime.fromisoformat(active.expires_at)
    )
    expires = expires if expires.tzinfo else expires.replace(tzinfo=UTC)
    assert before + timedelta(days=7) - timedelta(seconds=1) <= expires <= after + timedelta(days=7)
    withdrawn = rows["maf_withdrawn"]
    assert (withdrawn.status, withdrawn.member_psn_no, withdrawn.expires_at) == (
        "withdrawn",
        father_psn,
        None,
    )
    downgrade(empty_url, "f0001")  # and back: the old table holds what it can (never an unproven active)


def test_withdrawn_filings_are_marked_as_the_holders(empty_url: str):
    """f0003: only the holder could withdraw before, so old withdrawn filings say `holder`; the
    database then refuses a withdrawn filing that does not say who ended it."""
    upgrade(empty_url, "f0002")
    engine = create_engine(normalize_database_url(empty_url))
    at = datetime(2024, 5, 1, tzinfo=UTC)
    insert = text(
        "INSERT INTO mutual_aid_filings (filing_no, holder_person_id, member_person_id, member_psn_no,"
        " relationship, status, created_at, approved_at, withdrawn_at)"
        " VALUES (:no, 1, :m, :psn, 'parent', :status, :at, :at, :withdrawn)"
    )
    with engine.begin() as conn:
        _person(conn, 1)
        _, mother_psn = _person(conn, 2)
        _, father_psn = _person(conn, 3)
        conn.execute(
            insert,
            {"no": "maf_w", "m": 2, "psn": mother_psn, "status": "withdrawn", "at": at, "withdrawn": at},
        )
        conn.execute(
            insert,
            {"no": "maf_a", "m": 3, "psn": father_psn, "status": "active", "at": at, "withdrawn": None},
        )
    upgrade(empty_url, "heads")
    with engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT filing_no, withdrawn_by FROM mutual_aid_filings")).all())
    assert rows == {"maf_w": "holder", "maf_a": None}
    with pytest.raises(Exception, match="(?i)check"), engine.begin() as conn:
        conn.execute(text("UPDATE mutual_aid_filings SET status = 'withdrawn' WHERE filing_no = 'maf_a'"))
    with pytest.raises(Exception, match="(?i)check"), engine.begin() as conn:
        conn.execute(text("UPDATE mutual_aid_filings SET withdrawn_by = 'someone' WHERE filing_no = 'maf_w'"))
    engine.dispose()
    downgrade(empty_url, "f0002")
