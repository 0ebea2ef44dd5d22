"""A real HTTP server in a thread that answers from a script and records every request."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict -> JSON (problem+json when it has a "code" and status >= 400), bytes as is
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    delay: float = 0.0  # seconds before answering (longer than the client's timeout = a timeout)


@dataclass
class Reset:
    """Close the connection with a TCP RST after reading the request (ECONNRESET at the client)."""


def problem(status: int, code: str, **extra: Any) -> Reply:
    body = {"type": f"urn:yibao:problem:{code.lower()}", "title": code, "status": status, "code": code}
    body.update({"detail": f"detail of {code}", "request_id": "rid-test", **extra})
    return Reply(status, body)


Action = Reply | Reset | Callable[[Seen], "Reply | Reset"]


class FakeServer:
    def __init__(self, port: int = 0) -> None:
        self.script: deque[Action] = deque()
        self.default: Action = Reply(200, {"ok": True})
        self.requests: list[Seen] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                fake.requests.append(seen)
                action = fake.script.popleft() if fake.script else fake.default
                if callable(action):
                    action = action(seen)
                if isinstance(action, Reset):
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                if action.delay:
                    time.sleep(action.delay)
                if isinstance(action.body, bytes):
                    raw, ctype = action.body, action.content_type or "text/html"
                elif action.body is None:
                    raw, ctype = b"", action.content_type or "application/json"
                else:
                    raw = json.dumps(action.body, ensure_ascii=False).encode()
                    is_problem = action.status >= 400 and "code" in action.body
                    ctype = action.content_type or (
                        "application/problem+json" if is_problem else "application/json"
                    )
                try:
                    self.send_response(action.status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(raw)))
                    self.send_header("Connection", "close")
                    for k, v in action.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(raw)
                except OSError:
                    pass  # the client gave up (timeout test)
                self.close_connection = True

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def finish(self) -> None:
                with suppress(OSError):
                    super().finish()

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 64
            allow_reuse_address = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # resets and timeouts are on purpose

        self.httpd = Server(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def then(self, *actions: Action) -> FakeServer:
        self.script.extend(actions)
        return self


@contextmanager
def fake_server(port: int = 0) -> Iterator[FakeServer]:
    server = FakeServer(port).start()
    try:
        yield server
    finally:
        server.stop()
