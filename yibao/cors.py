"""Cross-origin requests: same-origin only by default; YIBAO_CORS_ORIGINS lists the origins allowed.

The pages (/api/v1/docs, /app/, /counter/) are served by the service itself and need no CORS. An app
served from elsewhere (a native shell's web view, a partner's pharmacy system in a browser) is allowed
by exact origin (scheme://host[:port]); there is no wildcard and no credentials mode: every caller
authenticates with headers (bearer token or institution signature), never with cookies.
"""

from __future__ import annotations

from flask import Flask, Response, request

ALLOWED_HEADERS = (
    "Authorization, Content-Type, Accept-Language, Idempotency-Key, X-Request-Id, "
    "X-Yb-Key, X-Yb-Timestamp, X-Yb-Nonce, X-Yb-Signature"
)
EXPOSED_HEADERS = "X-Request-Id, Idempotent-Replayed, Content-Language, Retry-After, Allow"
PREFLIGHT_MAX_AGE = 600


def _add_headers(resp: Response, origins: frozenset[str]) -> Response:
    origin = request.headers.get("Origin")
    if resp.headers.get("Vary") is None or "Origin" not in resp.headers["Vary"]:
        resp.headers.add("Vary", "Origin")
    if not origin or origin not in origins:
        return resp
    resp.headers["Access-Control-Allow-Origin"] = origin
    resp.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    if request.method == "OPTIONS" and request.headers.get("Access-Control-Request-Method"):
        allow = resp.headers.get("Allow") or "GET, POST, PUT, PATCH, DELETE"
        resp.headers["Access-Control-Allow-Methods"] = allow
        resp.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        resp.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
    return resp


def init_app(app: Flask) -> None:
    """Answer allowed origins (app.config["CORS_ORIGINS"]); everything else stays same-origin."""
    origins = frozenset(app.config.get("CORS_ORIGINS") or ())
    app.after_request(lambda resp: _add_headers(resp, origins))
