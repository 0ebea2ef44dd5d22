"""Issue 10 item 4: what the HTTP server refuses itself is problem+json too, at documented limits.

Raw sockets against a real gunicorn started like `make run` (python -m yibao.serve): exactly at each
limit the request reaches the application; one byte (or one field) over, gunicorn answers with the
status and code below, as application/problem+json.
"""

from __future__ import annotations

import importlib
import json
import re
import socket

import pytest

from yibao.http_server import LIMIT_REQUEST_FIELD_SIZE, LIMIT_REQUEST_FIELDS, LIMIT_REQUEST_LINE

from .serve_support import serve_env, serving

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def port(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("http-server")
    env = serve_env(tmp, YIBAO_SEED_DEMO="0")
    with serving(env):
        yield int(env["PORT"])


def raw(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes, read one response; (status, headers with lower-case names, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        out = b""
        while b"\r\n\r\n" not in out:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        head, _, body = out.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
    return int(lines[0].split()[1]), headers, body


def assert_problem(answer: tuple[int, dict[str, str], bytes], status: int, code: str) -> dict:
    got, headers, body = answer
    assert got == status, (got, body[:200])
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["status"] == status and problem["code"] == code and problem["title"] == code
    assert problem["type"] == f"urn:yibao:problem:{code.lower()}" and problem["detail"]
    assert b"<html" not in body.lower()
    return problem


def request_line_of(length: int) -> bytes:
    """`GET /healthz?aaa… HTTP/1.1` of exactly `length` bytes (CRLF not counted)."""
    fixed = len(b"GET /healthz? HTTP/1.1")
    line = b"GET /healthz?" + b"a" * (length - fixed) + b" HTTP/1.1"
    assert len(line) == length
    return line


def get(line: bytes = b"GET /healthz HTTP/1.1", extra: bytes = b"") -> bytes:
    return line + b"\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + extra + b"\r\n"


def test_the_limits_are_the_documented_numbers():
    assert (LIMIT_REQUEST_LINE, LIMIT_REQUEST_FIELDS, LIMIT_REQUEST_FIELD_SIZE) == (4094, 100, 8190)


def test_servers_do_not_share_gunicorns_control_socket():
    """Every gunicorn of one user defaults to ~/.gunicorn/gunicorn.ctl; ours opens none, so parallel
    servers (tests, benchmarks, a second instance) never take over each other's socket."""
    from gunicorn.config import Config

    cfg = Config()
    for name, value in vars(importlib.import_module("yibao.gunicorn_conf")).items():
        if name in cfg.settings:
            cfg.set(name, value)
    assert cfg.control_socket_disable is True


def test_request_line_at_the_limit_reaches_the_app_one_byte_over_is_414(port):
    status, _, body = raw(port, get(request_line_of(LIMIT_REQUEST_LINE)))
    assert status == 200 and json.loads(body)["status"] == "ok"
    assert_problem(raw(port, get(request_line_of(LIMIT_REQUEST_LINE + 1))), 414, "URI_TOO_LONG")


def header_field_of(length: int) -> bytes:
    """`X-Pad: aaa…\\r\\n` of exactly `length` bytes, CRLF included (how gunicorn counts a field)."""
    field = b"X-Pad: " + b"a" * (length - len(b"X-Pad: \r\n")) + b"\r\n"
    assert len(field) == length
    return field


def test_header_field_at_the_limit_reaches_the_app_one_byte_over_is_431(port):
    status, _, _ = raw(port, get(extra=header_field_of(LIMIT_REQUEST_FIELD_SIZE)))
    assert status == 200
    answer = raw(port, get(extra=header_field_of(LIMIT_REQUEST_FIELD_SIZE + 1)))
    assert_problem(answer, 431, "REQUEST_HEADER_FIELDS_TOO_LARGE")


def fields(count: int) -> bytes:
    """Header fields such that the request has exactly `count` (Host and Connection included)."""
    return b"".join(b"X-F%d: 1\r\n" % i for i in range(count - 2))


def test_header_count_at_the_limit_reaches_the_app_one_more_is_431(port):
    status, _, _ = raw(port, get(extra=fields(LIMIT_REQUEST_FIELDS)))
    assert status == 200
    answer = raw(port, get(extra=fields(LIMIT_REQUEST_FIELDS + 1)))
    assert_problem(answer, 431, "REQUEST_HEADER_FIELDS_TOO_LARGE")


@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
        get(b"GET /healthz HTTP/1.1", b"No colon in this header\r\n"),
        b"POST /api/v1/activations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: -1\r\nConnection: close\r\n\r\n{}",
        b"POST /api/v1/activations HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\nConnection: close\r\n\r\n",
    ],
    ids=["garbage-line", "bad-version", "bad-header", "negative-length", "non-numeric-length"],
)
def test_malformed_requests_are_400_problem_json(port, data):
    assert_problem(raw(port, data), 400, "BAD_REQUEST")


def test_options_is_204_with_allow_over_http(port):
    status, headers, body = raw(port, get(b"OPTIONS /api/v1/admin/persons HTTP/1.1"))
    assert status == 204 and body == b""
    assert set(re.split(r",\s*", headers["allow"])) == {"GET", "HEAD", "POST", "OPTIONS"}
    assert_problem(raw(port, get(b"OPTIONS /api/v1/nowhere HTTP/1.1")), 404, "NOT_FOUND")
