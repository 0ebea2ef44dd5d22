"""In-process domain events: the shell announces, registered domains react in the same unit of work."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

_handlers: dict[str, list[Callable[..., None]]] = defaultdict(list)

# Events the shell emits:
#   person_created(uow, person, opening_balance_fen)
#   person_suspended(uow, person)
#   person_activated(uow, person)   -- activation (also on a new device)


def on(event: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register a handler; registering the same function twice is a no-op."""

    def decorator(fn: Callable[..., None]) -> Callable[..., None]:
        if fn not in _handlers[event]:
            _handlers[event].append(fn)
        return fn

    return decorator


def emit(event: str, **kwargs: Any) -> None:
    """Call every handler; an exception aborts the caller's unit of work."""
    for fn in list(_handlers[event]):
        fn(**kwargs)
