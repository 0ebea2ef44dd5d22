"""bench.harness.load: the clients' requests, their statuses, and what counts as the load's own CPU."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.harness import Request, load, prebuilt

BUILD_CPU_S = 0.3  # what building one client's requests costs (burnt on purpose)


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


@prebuilt
def signed_like_requests(index: int, args: dict) -> Iterator[Request]:
    """Five requests per client whose building is expensive, as signing is."""
    for n in range(args["per_client"]):
        if n == 0:
            _burn(BUILD_CPU_S)
        yield "GET", f"/ok/{index}/{n}", {}, b""


def lazy_requests(index: int, args: dict) -> Iterator[Request]:
    """The same, not prebuilt: the building happens inside the timed window."""
    for n in range(args["per_client"]):
        if n == 0:
            _burn(BUILD_CPU_S)
        yield "GET", f"/ok/{index}/{n}", {}, b""


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = b"{}"
        self.send_response(200 if self.path.startswith("/ok/") else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_prebuilt_factory_is_built_before_the_timed_window(url: str) -> None:
    """Every request is sent and answered; the clients' CPU (what the bench reports as `clients`)
    leaves out the building, which the lazy factory pays inside the window."""
    args = {"per_client": 5}
    stats = load(url, "tests.bench.test_harness:signed_like_requests", clients=2, duration=10, args=args)
    assert stats.requests == 10 and stats.statuses == {200: 10}
    assert stats.cpu_s["clients"] < BUILD_CPU_S  # two clients built theirs: 0.6 s left out
    lazy = load(url, "tests.bench.test_harness:lazy_requests", clients=2, duration=10, args=args)
    assert lazy.requests == 10 and lazy.cpu_s["clients"] >= 2 * BUILD_CPU_S * 0.9


def test_max_requests_per_client_caps_a_prebuilt_factory(url: str) -> None:
    args = {"per_client": 5}
    stats = load(
        url,
        "tests.bench.test_harness:signed_like_requests",
        clients=2,
        duration=10,
        args=args,
        max_requests_per_client=3,
    )
    assert stats.requests == 6 and stats.statuses == {200: 6}


@prebuilt
def failing_requests(index: int, args: dict) -> Iterator[Request]:
    """Client 1 fails while building its requests; the others would wait for the start."""
    if index == 1:
        raise RuntimeError("cannot build")
    yield "GET", f"/ok/{index}/0", {}, b""


@prebuilt
def endless_requests(index: int, args: dict) -> Iterator[Request]:
    while True:
        yield "GET", f"/ok/{index}", {}, b""


def test_a_client_that_fails_while_building_fails_the_load_at_once(url: str) -> None:
    """No wait for the ready timeout, and no client left behind waiting for a start."""
    import multiprocessing as mp

    t0 = time.time()
    with pytest.raises(RuntimeError, match="failed before sending its ready"):
        load(url, "tests.bench.test_harness:failing_requests", clients=3, duration=5)
    assert time.time() - t0 < 30
    assert mp.active_children() == []


def test_an_endless_prebuilt_factory_is_capped_by_max_requests(url: str) -> None:
    stats = load(
        url, "tests.bench.test_harness:endless_requests", clients=2, duration=5, max_requests_per_client=4
    )
    assert stats.requests == 8 and stats.statuses == {200: 8}


def test_prebuilt_requests_older_than_their_signatures_fail_the_load(url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The service accepts a signature for ±300 s: a client fails rather than send older ones."""
    import bench.harness as harness

    monkeypatch.setattr(harness, "PREBUILT_MAX_AGE", BUILD_CPU_S / 2)  # inherited by the forked clients
    with pytest.raises(RuntimeError, match="failed before sending its results"):
        load(
            url,
            "tests.bench.test_harness:signed_like_requests",
            clients=1,
            duration=5,
            args={"per_client": 2},
        )
