"""The payments tables that grow with every request, and what of them `yibao maintenance prune` keeps.

- idempotency_keys: partitioned by `period_start`, the first instant of the UTC month of the key's
  first claim (the unique key is (institution_id, key, period_start)); a key is kept while it is live
  (`expires_at > now`, its 24 h) and at least its 24 h retention by creation time. A retry across a
  month boundary is found by payments/idempotency.py, which looks in the neighbouring month there.
- webhook_events (the delivery outbox): partitioned by `created_at`; a partition holding an event
  still pending delivery is never dropped, nor is such a row deleted.
"""

from __future__ import annotations

from datetime import timedelta

from yibao.partitions import Retained

from .idempotency import RETENTION

RETAINED = (
    Retained(
        "idempotency_keys",
        partition_column="period_start",
        age_column="created_at",
        minimum=lambda _config: RETENTION,
        still_needed="expires_at > :now",
    ),
    Retained(
        "webhook_events",
        partition_column="created_at",
        age_column="created_at",
        minimum=lambda _config: timedelta(0),
        still_needed="state = 'pending'",
    ),
)
