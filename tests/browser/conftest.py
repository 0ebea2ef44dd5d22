"""The docs-page browser fixtures: a live server and a page whose requests outside it are blocked.

The browser itself is tests/conftest.py's `chromium_browser` (tests/browser_support.py: Debian's Chromium
through Playwright; skipped locally without one, a failure in CI).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser_support import Browser
from tests.servers import gunicorn
from tests.support import ADMIN_TOKEN, TEST_SECRET


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
def browser(chromium_browser: Any, live_server: str) -> Iterator[Browser]:
    context = chromium_browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
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
