"""The HTTP engine shared by the clients: urllib, JSON, typed errors and the retry loop."""

from __future__ import annotations

import http.client
import json as jsonlib
import platform
import random
import re
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from . import errors
from .errors import ConnectionFailed, YibaoError

__version__ = "0.1.0"

QueryValue = str | int | bool | None
Query = Mapping[str, QueryValue]

# RFC 9110 idempotent methods: repeating them has the effect of doing them once.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_IDEMPOTENCY_KEY = re.compile(r"[!-~]{1,255}")
_SEGMENT = re.compile(r"[A-Za-z0-9_-]{1,128}")


class Result(dict[str, Any]):
    """A JSON object answered by yibao, with the answer's metadata as attributes.

    `status` (HTTP status), `headers` (lower-case names), `attempts` (how many requests it took,
    retries included), `replayed` (True when an Idempotency-Key replayed a stored answer).
    """

    status: int
    headers: dict[str, str]
    attempts: int

    def __init__(self, data: Mapping[str, Any], *, status: int, headers: Mapping[str, str], attempts: int):
        super().__init__(data)
        self.status = status
        self.headers = dict(headers)
        self.attempts = attempts

    @property
    def replayed(self) -> bool:
        return self.headers.get("idempotent-replayed", "").lower() == "true"

    @property
    def request_id(self) -> str | None:
        return self.headers.get("x-request-id")


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class _NetworkError(Exception):
    """No answer. `sent` is False only when the request provably never left (refused, DNS)."""

    def __init__(self, cause: BaseException, *, sent: bool, fatal: bool = False) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause
        self.sent = sent
        self.fatal = fatal  # retrying cannot help (certificate verification)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow redirects: urllib would turn a signed POST into an unsigned GET."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def segment(value: str, what: str = "id") -> str:
    """An opaque id used as a URL path segment; refuses anything that could change the path."""
    if not isinstance(value, str) or not _SEGMENT.fullmatch(value):
        raise ValueError(f"{what} must be 1-128 characters of [A-Za-z0-9_-], got {value!r}")
    return value


def api_path(path: str) -> str:
    """'/payment-orders' -> '/api/v1/payment-orders'; full paths ('/api/…', '/.well-known/…') are kept."""
    if not path.startswith("/"):
        raise ValueError("path must start with '/'")
    if path.startswith(("/api/", "/.well-known/")):
        return path
    return "/api/v1" + path


def encode_query(query: Query | None) -> str:
    """The query string as sent (and signed): None values dropped, booleans as true/false, order kept."""
    if not query:
        return ""
    pairs = []
    for k, v in query.items():
        if v is None:
            continue
        pairs.append((k, ("true" if v else "false") if isinstance(v, bool) else str(v)))
    return urllib.parse.urlencode(pairs)


def encode_json(body: Any) -> bytes:
    """Compact UTF-8 JSON, the bytes that are sent and signed."""
    if body is None:
        return b""
    return jsonlib.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class BaseClient:
    """What every client shares: base URL, timeouts, the retry policy and error mapping."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10,
        max_retries: int = 3,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        language: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        user_agent: str | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError("base_url must be http(s)://host[:port][/prefix]")
        if max_retries < 0 or backoff < 0 or timeout <= 0:
            raise ValueError("max_retries and backoff must be >= 0, timeout > 0")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep
        self.language = language
        self.user_agent = user_agent or (f"yibao-client/{__version__} python/{platform.python_version()}")
        handlers: list[Any] = [_NoRedirect()]
        if parts.scheme == "https":
            handlers.append(urllib.request.HTTPSHandler(context=ssl_context or ssl.create_default_context()))
        self._opener = urllib.request.build_opener(*handlers)

    # ------------------------------------------------------------ hooks for subclasses

    def _auth_headers(self, method: str, target: str, body: bytes) -> dict[str, str]:
        """Headers that authenticate one attempt (called afresh for every attempt)."""
        return {}

    # ------------------------------------------------------------ the engine

    def _send(self, method: str, target: str, body: bytes, headers: dict[str, str]) -> _Answer:
        req = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            self.base_url + target,
            data=body if body or method not in ("GET", "HEAD") else None,
            headers=headers,
            method=method,
        )
        try:
            try:
                resp = self._opener.open(req, timeout=self.timeout)
            except urllib.error.HTTPError as exc:  # an answer with a 4xx/5xx (or 3xx) status
                try:
                    return _Answer(exc.code, _lower(exc.headers or {}), exc.read())
                finally:
                    exc.close()
            with resp:
                return _Answer(resp.status, _lower(resp.headers), resp.read())
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise _NetworkError(reason, sent=False, fatal=True) from reason
            # Refused or unresolvable: the request never left this machine.
            not_sent = isinstance(reason, ConnectionRefusedError | socket.gaierror)
            cause = reason if isinstance(reason, BaseException) else exc
            raise _NetworkError(cause, sent=not not_sent) from exc
        except (OSError, http.client.HTTPException) as exc:  # reset, timeout, truncated answer
            raise _NetworkError(exc, sent=True) from exc

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        """backoff * 2^(attempt-1), capped, times a jitter in [0.5, 1.5); Retry-After honoured (capped)."""
        step = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        delay = step * (0.5 + random.random())
        if retry_after and retry_after.strip().isascii() and retry_after.strip().isdigit():
            delay = max(delay, min(float(retry_after.strip()), self.max_backoff))
        return delay

    def _retryable(self, err: YibaoError) -> bool:
        """503s and IDEMPOTENCY_KEY_IN_USE: nothing was done (or the first request is still running)."""
        return err.status == 503 or err.code == "IDEMPOTENCY_KEY_IN_USE"

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        query: Query | None = None,
        headers: Mapping[str, str] | None = None,
        retry_network: bool | None = None,
    ) -> Result:
        """One logical request: attempts, retries and the typed error of the last answer.

        `retry_network` (default: the method is idempotent) allows retrying after a network error
        once the request may have reached the server. A request that provably never left (connection
        refused, DNS) is always retried.
        """
        method = method.upper()
        target = api_path(path)
        qs = encode_query(query)
        if qs:
            target += ("&" if "?" in target else "?") + qs
        body = encode_json(json)
        if retry_network is None:
            retry_network = method in IDEMPOTENT_METHODS
        attempt = 0
        while True:
            attempt += 1
            h = {"User-Agent": self.user_agent, "Accept": "application/json, application/problem+json"}
            if self.language:
                h["Accept-Language"] = self.language
            if body:
                h["Content-Type"] = "application/json"
            h.update(headers or {})
            h.update(self._auth_headers(method, target, body))
            try:
                answer = self._send(method, target, body, h)
            except _NetworkError as exc:
                if attempt <= self.max_retries and not exc.fatal and (retry_network or not exc.sent):
                    self.sleep(self._delay(attempt, None))
                    continue
                err = ConnectionFailed(None, "NETWORK_ERROR", str(exc))
                err.attempts = attempt  # type: ignore[attr-defined]
                raise err from exc.cause
            if 200 <= answer.status < 300:
                return _result(answer, attempt)
            err = errors.from_response(answer.status, answer.headers, answer.body)
            err.attempts = attempt  # type: ignore[attr-defined]
            if attempt <= self.max_retries and self._retryable(err):
                self.sleep(self._delay(attempt, answer.headers.get("retry-after")))
                continue
            raise err

    def _pages(self, path: str, query: Query | None, call: Callable[..., Result]) -> Iterator[dict[str, Any]]:
        q: dict[str, QueryValue] = dict(query or {})
        while True:
            page = call("GET", path, query=q)
            yield from page.get("items") or []
            cursor = page.get("next_cursor")
            if cursor is None or cursor == q.get("cursor"):
                return
            q["cursor"] = cursor


def _lower(headers: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in headers.items():
        k = k.lower()
        out[k] = f"{out[k]}, {v}" if k in out else v
    return out


def _result(answer: _Answer, attempts: int) -> Result:
    if not answer.body.strip():
        return Result({}, status=answer.status, headers=answer.headers, attempts=attempts)
    try:
        data = jsonlib.loads(answer.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        data = None
    if not isinstance(data, dict):
        text = answer.body[:200].decode("utf-8", "replace")
        err = errors.NonProblemResponse(
            answer.status,
            "NON_PROBLEM_RESPONSE",
            f"HTTP {answer.status} answer is not a JSON object: {text}",
            headers=answer.headers,
        )
        err.body = answer.body[:2048]
        raise err
    return Result(data, status=answer.status, headers=answer.headers, attempts=attempts)
