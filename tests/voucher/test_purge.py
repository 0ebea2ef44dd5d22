"""Housekeeping: expired single-use rows and ec_tokens are deleted; the usage audit stays."""

from __future__ import annotations

from datetime import timedelta

from tests.support import problem
from voucher import housekeeping
from voucher.models import EcToken, UsageRecord, VoucherUse
from yibao.db import db, utcnow

from .support import count_rows


def test_purge_expired_keeps_live_rows_and_the_audit(app, yb, vd, runner):
    p, inst = yb.person(region="532900"), yb.institution(region="532900")
    qr = vd.issue(p)["qr_content"]
    assert vd.scan(inst, qr, "02121").status_code == 200
    assert (count_rows(app, VoucherUse), count_rows(app, EcToken)) == (1, 1)

    # nothing has expired yet: the CLI deletes nothing and the code stays used
    out = runner.invoke(args=["vouchers", "purge-expired"])
    assert out.exit_code == 0, out.output
    assert '"voucher_uses": 0' in out.output and '"ec_tokens": 0' in out.output
    assert (count_rows(app, VoucherUse), count_rows(app, EcToken)) == (1, 1)
    problem(vd.scan(inst, qr, "02121"), 409, "VOUCHER_ALREADY_USED")

    # the code's lifetime (plus leeway) is over but the ec_token (30 min) still lives
    with app.app_context(), db.uow() as uow:
        assert housekeeping.purge_expired(uow, now=utcnow() + timedelta(minutes=6)) == {
            "voucher_uses": 1,
            "ec_tokens": 0,
        }
        uow.commit()
    with app.app_context(), db.uow() as uow:
        assert housekeeping.purge_expired(uow, now=utcnow() + timedelta(minutes=31)) == {
            "voucher_uses": 0,
            "ec_tokens": 1,
        }
        uow.commit()
    assert (count_rows(app, VoucherUse), count_rows(app, EcToken)) == (0, 0)
    assert count_rows(app, UsageRecord) == 2  # the accepted scan and the refused replay
