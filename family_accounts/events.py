"""The audit trail of bindings: one row per change, with the status it left."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from yibao.db import UnitOfWork

from .models import BindingEvent, FamilyBinding


@dataclass(frozen=True)
class EventView:
    """One audit event as either side sees it."""

    binding_id: str
    event: str
    actor_role: str
    status_after: str
    at: datetime


def record(uow: UnitOfWork, b: FamilyBinding, event: str, role: str, actor: int | None, at: datetime) -> None:
    """Append one audit row; it records the status the change left."""
    uow.session.add(
        BindingEvent(
            binding_id=b.id, event=event, actor_role=role, actor_person_id=actor, status_after=b.status, at=at
        )
    )
