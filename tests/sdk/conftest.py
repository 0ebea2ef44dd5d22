from __future__ import annotations

from collections.abc import Iterator

import pytest

from .fakeserver import FakeServer, fake_server


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with fake_server() as s:
        yield s


@pytest.fixture
def sleeps() -> list[float]:
    """Pass `sleep=sleeps.append` to a client: backoff is recorded, never waited."""
    return []
