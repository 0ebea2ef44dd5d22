"""The HTTP server's own refusals as RFC 9457 problem+json (gunicorn worker class and limits).

gunicorn answers a request it cannot parse (bad request line, header, Content-Length; a request line
or header over the limits) before the application sees it, with an HTML page. ProblemWorker keeps
gunicorn's decisions (which status, the warning and the access-log line) and writes the answer as
problem+json with a stable code instead.
"""

from __future__ import annotations

import json

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker
from gunicorn.workers.sync import SyncWorker

from yibao.errors import MESSAGES

# Explicit so the documented numbers cannot drift with gunicorn's defaults (yibao/gunicorn_conf.py).
LIMIT_REQUEST_LINE = 4094
LIMIT_REQUEST_FIELDS = 100
LIMIT_REQUEST_FIELD_SIZE = 8190

# The status gunicorn chose → the code of this service's error table.
STATUS_CODES = {
    400: "BAD_REQUEST",
    403: "NOT_PERMITTED",
    414: "URI_TOO_LONG",
    417: "EXPECTATION_FAILED",
    431: "REQUEST_HEADER_FIELDS_TOO_LARGE",
    501: "NOT_IMPLEMENTED",
}


def problem_bytes(status: int, reason: str) -> bytes:
    """A complete HTTP/1.1 response: problem+json, `Connection: close` (the request was not understood)."""
    code = STATUS_CODES.get(status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST")
    body = json.dumps(
        {
            "type": f"urn:yibao:problem:{code.lower()}",
            "title": code,
            "status": status,
            "code": code,
            "detail": MESSAGES[code][1],  # English: the request's Accept-Language was not read
        },
        ensure_ascii=False,
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/problem+json\r\n"
        "Content-Language: en\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + body


def write_problem(sock, status_int: int, reason: str, mesg: str) -> None:  # type: ignore[no-untyped-def]
    """gunicorn.util.write_error's signature; gunicorn's own text (`mesg`) stays in its log only."""
    util.write_nonblock(sock, problem_bytes(status_int, reason))


class ProblemWorker(SyncWorker):
    """gunicorn's sync worker whose own error answers are problem+json."""

    def init_process(self) -> None:
        # gunicorn.util.write_error is the only writer of gunicorn's own error answers (called from
        # Worker.handle_error, which keeps classifying the error and logging it): replaced for the whole
        # worker process, so it holds for every thread of a threaded worker too.
        util.write_error = write_problem
        super().init_process()


class ThreadedProblemWorker(ThreadWorker):
    """gunicorn's threaded worker (gthread) with problem+json refusals: what `make run` uses, so that a
    long poll of the push channel (GET /api/v1/events, up to 25 s) holds a thread, not a process."""

    def init_process(self) -> None:
        util.write_error = write_problem
        super().init_process()
