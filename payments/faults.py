"""Fault injection for crash tests: active only when YIBAO_FAULT_INJECTION names a point."""

from __future__ import annotations

import os


def hit(point: str) -> None:
    """Kill this process at `point` if the environment asks for it (tests only; never set in production)."""
    wanted = os.environ.get("YIBAO_FAULT_INJECTION")
    if wanted and point in wanted.split(","):
        os._exit(137)  # like SIGKILL: no cleanup, no commit, no rollback
