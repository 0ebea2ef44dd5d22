"""A real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) with the network closed.

Locally without a browser these tests skip with the reason; in CI (CI=true) a missing browser is a
failure, never a skip: .ci/run installs Debian's chromium when it is missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import TEST_SECRET
from tests.servers import gunicorn
from tests.support import ADMIN_TOKEN

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


def _need_browser() -> None:
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


@pytest.fixture(scope="session")
def _playwright() -> Iterator[Any]:
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def live_server(database_url: str, redis_url: str) -> Iterator[str]:
    """The service under gunicorn on the test's database and Redis (the `yb` driver shares them)."""
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "SECRET_KEY": TEST_SECRET,
        "YIBAO_JSON_LOGS": "0",
    }
    with gunicorn(env, workers=2) as base:
        yield base


@pytest.fixture
def browser(_playwright: Any, live_server: str) -> Iterator[Browser]:
    context = _playwright.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    b = Browser(page=None, base=live_server)

    def gate(route: Any) -> None:
        url = route.request.url
        if url.startswith(live_server + "/") or url.startswith("data:") or url.startswith("blob:"):
            route.continue_()
        else:
            b.blocked.append(url)
            route.abort()

    context.route("**/*", gate)
    page = context.new_page()
    page.on("console", lambda msg: msg.type == "error" and b.console_errors.append(msg.text))
    b.page = page
    yield b
    context.close()
