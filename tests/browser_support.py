"""The real headless Chromium of the browser tests: Debian's /usr/bin/chromium driven by Playwright.

Locally without a browser these tests skip with the reason; in CI (CI=true) a missing browser is a
failure, never a skip: .ci/run installs Debian's chromium when it is missing. One Playwright driver per
pytest process (tests/conftest.py `chromium_browser`, session-scoped) serves every browser test.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from typing import Any

import pytest

CHROMIUM = os.environ.get("YIBAO_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# As root, in a closed network: no sandbox, no background requests to Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def need_browser() -> None:
    missing = None
    if not os.path.exists(CHROMIUM):
        missing = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "the playwright package is not installed (make test installs it)"
    if missing is None:
        return
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"browser tests must run in CI: {missing}")
    pytest.skip(f"browser test skipped: {missing}")


@dataclass
class Browser:
    """A page whose every request outside the service is blocked and recorded."""

    page: Any
    base: str
    blocked: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
