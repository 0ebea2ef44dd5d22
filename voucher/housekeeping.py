"""Housekeeping: expired single-use rows and ec_tokens are deleted (cron); the usage audit is kept
for its configured retention, then pruned with the other growing tables (yibao/partitions.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete

from yibao.db import UnitOfWork, utcnow
from yibao.partitions import Retained

from .models import EcToken, VoucherUse

# Margin past a use row's expires_at (itself the code's exp + leeway) before it may go: a server whose
# clock runs behind still refuses the replay from its own copy of the row.
USE_ROW_MARGIN = timedelta(hours=1)

# The growing tables and what must outlive `yibao maintenance prune`:
# - voucher_uses is partitioned by expires_at, which the code itself determines (a signed code's
#   exp + leeway; a YO1 code's (step + 2) * 30 s + leeway), so the same code always lands in the same
#   partition and the unique (sub, jti, expires_at) still means "once". A row goes only once its
#   code can no longer verify anywhere.
# - voucher_usage (the audit of every scan) is kept YIBAO_USAGE_RETENTION_DAYS.
RETAINED = (
    Retained(
        "voucher_uses",
        partition_column="expires_at",
        age_column="expires_at",
        minimum=lambda _config: USE_ROW_MARGIN,
        still_needed="expires_at > :now",
    ),
    Retained(
        "voucher_usage",
        partition_column="created_at",
        age_column="created_at",
        minimum=lambda config: timedelta(days=config["USAGE_RETENTION_DAYS"]),
    ),
)


def purge_expired(uow: UnitOfWork, now: datetime | None = None) -> dict[str, int]:
    """Delete single-use rows and ec_tokens past their expiry (cron: `yibao vouchers purge-expired`).

    Safe at any time: a code past exp + leeway is refused as expired before its use row is consulted,
    and an expired ec_token is refused whether its row exists or not. The usage audit is kept.
    """
    now = now or utcnow()
    uses = uow.session.execute(delete(VoucherUse).where(VoucherUse.expires_at < now)).rowcount
    ec = uow.session.execute(delete(EcToken).where(EcToken.expires_at < now)).rowcount
    return {"voucher_uses": uses, "ec_tokens": ec}
