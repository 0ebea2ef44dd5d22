"""Housekeeping: expired single-use rows and ec_tokens are deleted (cron); the usage audit is kept."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete

from yibao.db import UnitOfWork, utcnow

from .models import EcToken, VoucherUse


def purge_expired(uow: UnitOfWork, now: datetime | None = None) -> dict[str, int]:
    """Delete single-use rows and ec_tokens past their expiry (cron: `yibao vouchers purge-expired`).

    Safe at any time: a code past exp + leeway is refused as expired before its use row is consulted,
    and an expired ec_token is refused whether its row exists or not. The usage audit is kept.
    """
    now = now or utcnow()
    uses = uow.session.execute(delete(VoucherUse).where(VoucherUse.expires_at < now)).rowcount
    ec = uow.session.execute(delete(EcToken).where(EcToken.expires_at < now)).rowcount
    return {"voucher_uses": uses, "ec_tokens": ec}
