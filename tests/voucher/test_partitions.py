"""Single use under partitioning and retention (issue 12): voucher_uses is partitioned by expires_at,
a function of the code itself, so a replay lands in the same partition and is refused there; prune
never removes a use row whose code could still verify."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, text

from tests.support import problem
from voucher import offline
from voucher.claims import LEEWAY
from voucher.models import VoucherUse
from yibao.db import db, utcnow
from yibao.partitions import add_months, month_start, partition_name

from .offline_support import independent_code, new_credential, server_time
from .support import count_rows


def _partition_of_use(app, sub: str) -> str | None:
    with app.app_context(), db.uow(readonly=True) as uow:
        if uow.dialect != "postgresql":
            return None
        return uow.session.scalar(
            text("SELECT tableoid::regclass::text FROM voucher_uses WHERE sub = :s"), {"s": sub}
        )


def test_a_used_code_stays_refused_after_prune_and_a_redis_flush(app, yb, vd, runner, redis_client):
    p, inst = yb.person(region="532900"), yb.institution(region="532900")
    qr = vd.issue(p)["qr_content"]
    assert vd.scan(inst, qr, "02121").status_code == 200
    out = runner.invoke(args=["maintenance", "prune", "--older-than", "0s"])
    assert out.exit_code == 0, out.output
    redis_client.flushdb()
    problem(vd.scan(inst, qr, "02121"), 409, "VOUCHER_ALREADY_USED")
    assert count_rows(app, VoucherUse) == 1


def test_an_offline_code_scanned_across_a_month_boundary_is_used_once(app, yb, vd, redis_client, monkeypatch):
    """A YO1 code made seconds before the month ends expires next month: its use row goes to next
    month's partition whenever it is scanned, so the replay after the boundary meets the same row."""
    boundary = add_months(month_start(utcnow()), 1)
    at = boundary.timestamp() - 10
    p, inst = yb.person(), yb.institution()
    cred = new_credential(yb, p)
    code = independent_code(cred["credential_id"], cred["secret"], at)
    expires = datetime.fromtimestamp(offline.parse(code).exp + LEEWAY, UTC)
    assert expires > boundary  # the scan is this month, the row's expiry next month
    with server_time(monkeypatch, at):
        assert vd.scan(inst, code).status_code == 200
    redis_client.flushdb()
    with server_time(monkeypatch, at + 20):  # after the boundary, within the step window
        problem(vd.scan(inst, code), 409, "VOUCHER_ALREADY_USED")
    with app.app_context(), db.uow(readonly=True) as uow:
        rows = uow.session.scalars(select(VoucherUse).where(VoucherUse.sub == cred["credential_id"])).all()
    assert [r.expires_at for r in rows] == [expires]
    part = _partition_of_use(app, cred["credential_id"])
    assert part in (None, partition_name("voucher_uses", month_start(expires)))
