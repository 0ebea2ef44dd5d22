"""Browser fixtures for /app/ and /counter/: Debian's Chromium through Playwright, network closed but
the service, one browser context per simulated device (viewport and language of its own).

The browser is the session's `chromium_browser` (tests/conftest.py; skip locally without a browser, fail
in CI). The live server here runs
gunicorn's threaded worker, as recommended for the long-polling
events endpoint (docs/pages.md): a waiting poll holds a thread, not a worker process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser_support import Browser
from tests.servers import gunicorn
from tests.support import ADMIN_TOKEN, TEST_SECRET

ARTIFACTS = Path(os.environ.get("YIBAO_ARTIFACTS") or Path(__file__).parent / "artifacts")


@pytest.fixture(scope="module")
def chromium(chromium_browser: Any) -> Any:
    """The session's browser (tests/conftest.py)."""
    return chromium_browser


@pytest.fixture
def pages_server(database_url: str, redis_url: str) -> Iterator[str]:
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "SECRET_KEY": TEST_SECRET,
        "YIBAO_JSON_LOGS": "0",
        # Threads for the long polls; a short graceful stop so an open poll does not hold the teardown.
        "GUNICORN_CMD_ARGS": "--worker-class gthread --threads 16 --graceful-timeout 1",
    }
    with gunicorn(env, workers=2) as base:
        yield base


@pytest.fixture
def device(chromium: Any, pages_server: str) -> Iterator[Callable[..., Browser]]:
    """device(locale="zh-CN", width=320, height=720) → a Browser on its own context."""
    contexts: list[Any] = []

    def make(locale: str = "zh-CN", width: int = 320, height: int = 720) -> Browser:
        context = chromium.new_context(
            locale=locale, viewport={"width": width, "height": height}, extra_http_headers={}
        )
        b = Browser(page=None, base=pages_server)

        def gate(route: Any) -> None:
            url = route.request.url
            if url.startswith(pages_server + "/") or url.startswith("data:") or url.startswith("blob:"):
                try:
                    route.continue_()
                except Exception as err:  # playwright.sync_api.Error (imported only with a browser)
                    # The network was cut meanwhile (context.set_offline: the offline-code tests) and
                    # Chromium failed the request already: the page sees that failure, as it should.
                    if "already handled" not in str(err):
                        raise
            else:
                b.blocked.append(url)
                route.abort()

        context.route("**/*", gate)
        page = context.new_page()
        page.on("console", lambda msg: msg.type == "error" and b.console_errors.append(msg.text))
        page.on("pageerror", lambda exc: b.console_errors.append(str(exc)))
        b.page = page
        contexts.append(context)
        return b

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def shot() -> Callable[[Browser, str], Path]:
    """Write a full-page screenshot to the artefacts folder CI keeps ($YIBAO_ARTIFACTS)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(b: Browser, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        b.page.screenshot(path=str(path), full_page=True)
        return path

    return take
