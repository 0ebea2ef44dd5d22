"""flask-smorest glue: the Api, a Blueprint that documents auth and errors once, a strict Schema."""

from __future__ import annotations

import functools
import hmac
import http
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import marshmallow as ma
from flask import Flask, current_app, g, request
from flask_smorest import Api as _Api
from flask_smorest import Blueprint as _Blueprint

from . import docs_page, errors
from .auth import institutions as inst_auth
from .auth import tokens
from .auth.institution_cache import NonceClaim, StaleInstitution
from .db import db
from .errors import AppError
from .redis_store import redis_ext

SECURITY_SCHEMES = {
    "UserBearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "App user access token from /activations or /sessions/refresh (15 minutes).",
    },
    "AdminBearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "The operator token (ADMIN_TOKEN).",
    },
    "InstitutionSignature": {
        # OpenAPI has no scheme for a request signature: the key id is the apiKey, and the three other
        # headers are computed per request (the docs page at /api/v1/docs computes them in the browser).
        "type": "apiKey",
        "in": "header",
        "name": "X-Yb-Key",
        "description": (
            "Institutions send X-Yb-Key (key id), X-Yb-Timestamp (unix seconds, ±300 s), X-Yb-Nonce "
            "(unique per request, 1–128 visible ASCII characters) and X-Yb-Signature = hex "
            "HMAC-SHA256(secret, METHOD\\nPATH[?QUERY]\\nTIMESTAMP\\nNONCE\\nSHA256_HEX(BODY)); "
            "'?QUERY' only when there is a query string. On the docs page, enter the key id and secret in "
            "the panel at the top: 'Try it out' then signs every institution request."
        ),
    },
}

# RFC 9457 problem details as this service sends them (yibao/errors.py:problem). Extra members
# (`errors`, `violations`, …) are allowed: a code may carry more, documented with the code.
PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "code", "detail"],
    "properties": {
        "type": {"type": "string", "description": "urn:yibao:problem:<code in lower case>"},
        "title": {"type": "string", "description": "The code again (stable, not translated)."},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "code": {
            "type": "string",
            "pattern": "^[A-Z][A-Z0-9_]*$",
            "description": "Stable upper-case code: act on this, never on `detail`.",
        },
        "detail": {"type": "string", "description": "Human text in the language of Accept-Language."},
        "instance": {"type": "string", "description": "The request path."},
        "request_id": {"type": "string", "description": "The X-Request-Id of this request."},
        "errors": {
            "type": "object",
            "description": "VALIDATION_FAILED only: field name → messages (nested for nested fields).",
        },
        "violations": {
            "type": "array",
            "items": {"type": "object"},
            "description": "SUPERVISION_BLOCKED only: [{rule_id, kind, evidence}].",
        },
        "reason": {
            "type": "string",
            "description": "INSTITUTION_AUTH_FAILED, INSTITUTION_DISABLED: why the signature was refused.",
        },
    },
}
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
# Codes any operation may answer besides its own: documented on every operation.
COMMON_CODES = ("DATABASE_UNAVAILABLE",)
BODY_CODES = ("MALFORMED_JSON", "UNSUPPORTED_MEDIA_TYPE", "PAYLOAD_TOO_LARGE")


NUL_MESSAGE = "Must not contain NUL characters."


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


class Schema(ma.Schema):
    """Unknown fields are an error; no string may hold NUL; output keeps declaration order."""

    class Meta:
        unknown = ma.RAISE
        ordered = True

    @ma.pre_load(pass_collection=True)
    def _refuse_nul(self, data: Any, **_: Any) -> Any:
        # No field of this API has a use for NUL, and PostgreSQL text cannot store it: refuse it
        # here, before any side effect (a verification consumes the code before its audit insert).
        if isinstance(data, Mapping):
            bad = {str(k): [NUL_MESSAGE] for k, v in data.items() if _has_nul(k) or _has_nul(v)}
            if bad:
                raise ma.ValidationError(bad)
        elif _has_nul(data):
            raise ma.ValidationError(NUL_MESSAGE)
        return data


def _problem_content() -> dict:
    return {errors.PROBLEM_MIME: {"schema": PROBLEM_REF}}


class Api(_Api):
    """Api whose errors are RFC 9457 problem+json, in the service and in the OpenAPI document."""

    def handle_http_exception(self, error: Exception) -> Any:  # flask-smorest's hook
        return errors.handle_http_exception(error)  # type: ignore[arg-type]

    def init_app(self, app: Flask, *args: Any, **kwargs: Any) -> None:
        super().init_app(app, *args, **kwargs)
        docs_page.init_app(app)
        for name, scheme in SECURITY_SCHEMES.items():
            self.spec.components.security_scheme(name, scheme)
        self.spec.components.schema("Problem", PROBLEM_SCHEMA)

    def _register_responses(self) -> None:
        """flask-smorest's per-status responses (UNPROCESSABLE_ENTITY, DEFAULT_ERROR…) as problem+json."""
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if status >= 400:
                response["content"] = _problem_content()
            self.spec.components.response(status.name, response, lazy=True)
        self.spec.components.response(
            self.DEFAULT_ERROR_RESPONSE_NAME,
            {"description": "Any other error, as problem+json", "content": _problem_content()},
            lazy=True,
        )


def _add_problems(view: Callable, codes: Iterable[str]) -> None:
    doc = view.__dict__.setdefault("_apidoc", {})
    doc["yb_problems"] = list(dict.fromkeys([*doc.get("yb_problems", []), *codes]))


def problems_doc(codes: Iterable[str]) -> dict[str, dict]:
    """OpenAPI responses for these error codes, grouped by HTTP status, each code with its text."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        if code not in errors.MESSAGES:
            raise KeyError(f"undocumented error code {code!r}: register it in an errors.py")
        by_status.setdefault(errors.MESSAGES[code][0], []).append(code)
    out = {}
    for status, listed in sorted(by_status.items()):
        # A variant's key (errors.register_variant) is shown as the code clients see.
        lines = "".join(f"\n- `{errors.base_code(c)}`: {errors.MESSAGES[c][1]}" for c in listed)
        out[str(status)] = {
            "description": f"{http.HTTPStatus(status).phrase}:{lines}",
            "content": _problem_content(),
            "x-problem-codes": [errors.base_code(c) for c in listed],
        }
    return out


class Blueprint(_Blueprint):
    """Adds `user`, `institution` and `admin` decorators that authenticate and document, and
    `problems(*codes)` that documents the error codes an operation answers (problem+json)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._prepare_doc_cbks.append(self._prepare_problems_doc)

    @staticmethod
    def problems(*codes: str) -> Callable:
        """Document the codes this operation may answer; the statuses and texts come from the
        error tables (each domain's errors.py), so the document cannot drift from the service."""

        def decorator(view: Callable) -> Callable:
            _add_problems(view, codes)
            return view

        return decorator

    @staticmethod
    def _prepare_problems_doc(doc: dict, doc_info: dict, *, method: str, **_: Any) -> dict:
        codes = list(doc_info.get("yb_problems", []))
        if method.upper() in JSON_METHODS:
            codes += BODY_CODES
        if doc_info.get("arguments"):
            codes.append("VALIDATION_FAILED")
        codes += COMMON_CODES
        responses = doc.setdefault("responses", {})
        for status, response in problems_doc(dict.fromkeys(codes)).items():
            responses.pop(int(status), None)
            responses[status] = response
        responses.setdefault("default", Api.DEFAULT_ERROR_RESPONSE_NAME)
        return doc

    def _auth(self, scheme: str, check: Callable[[], None], codes: tuple[str, ...]) -> Callable:
        def decorator(view: Callable) -> Callable:
            @functools.wraps(view)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                check()
                return view(*args, **kwargs)

            wrapped = self.doc(security=[{scheme: []}])(wrapper)
            _add_problems(wrapped, codes)
            return wrapped

        return decorator

    def user(self, view: Callable) -> Callable:
        return self._auth("UserBearer", authenticate_user, ("AUTHENTICATION_REQUIRED", "TOKEN_INVALID"))(view)

    def institution(self, view: Callable) -> Callable:
        return self._auth(
            "InstitutionSignature",
            authenticate_institution,
            ("INSTITUTION_AUTH_FAILED", "INSTITUTION_DISABLED", "REPLAY_STORE_UNAVAILABLE"),
        )(view)

    def institution_claiming(self, view: Callable) -> Callable:
        """Like `institution`, but the request's nonce is burned in the same Redis round trip as the
        single-use keys the view claims (`current_claim().claim(key, ttl)`).

        The view must claim, or `current_claim().settle()`, before its first write; whatever it does,
        the nonce is burned before the answer leaves (a reused nonce answers 401, Redis down 503, as
        with `institution`). If the cache's institution turned out stale at the claim (nothing was
        burned, and the view has only read), the view runs again, authenticated from the database.
        """

        @functools.wraps(view)
        def claiming(*args: Any, **kwargs: Any) -> Any:
            try:
                return _run_claiming(view, args, kwargs, fresh=False)
            except StaleInstitution:
                return _run_claiming(view, args, kwargs, fresh=True)

        codes = ("INSTITUTION_AUTH_FAILED", "INSTITUTION_DISABLED", "REPLAY_STORE_UNAVAILABLE")
        wrapped = self.doc(security=[{"InstitutionSignature": []}])(claiming)
        _add_problems(wrapped, codes)
        return wrapped

    def admin(self, view: Callable) -> Callable:
        return self._auth("AdminBearer", authenticate_admin, ("ADMIN_AUTH_FAILED",))(view)


def _run_claiming(view: Callable, args: tuple, kwargs: dict, *, fresh: bool) -> Any:
    claim = authenticate_institution(defer=True, fresh=fresh)
    try:
        rv = view(*args, **kwargs)
    except StaleInstitution:
        raise
    except BaseException:
        claim.settle()  # a replayed request answers 401 (or 503) whatever the view raised
        raise
    claim.settle()
    return rv


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def authenticate_admin() -> None:
    expected = current_app.config.get("ADMIN_TOKEN")
    given = _bearer()
    # Fail closed: with no ADMIN_TOKEN configured nobody is an operator.
    if not expected or not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise AppError("ADMIN_AUTH_FAILED")
    g.admin = True


def authenticate_user() -> None:
    token = _bearer()
    if token is None:
        raise AppError("AUTHENTICATION_REQUIRED")
    # One statement (session and person by session id): autocommit saves BEGIN/ROLLBACK round trips;
    # the view's own reads may share this session (db.request_reads).
    with db.request_reads() as uow:
        g.user = tokens.authenticate(uow, token, secret=current_app.config["SECRET_KEY"])


def authenticate_institution(*, defer: bool = False, fresh: bool = False) -> NonceClaim:
    """The signed call's institution into `g.institution`; its nonce burned unless `defer` (then the
    view burns it with its own single-use keys: Blueprint.institution_claiming)."""
    h = request.headers
    cfg = current_app.config
    req = inst_auth.signed_request(
        key_id=h.get("X-Yb-Key"),
        timestamp=h.get("X-Yb-Timestamp"),
        nonce=h.get("X-Yb-Nonce"),
        signature=h.get("X-Yb-Signature"),
        method=request.method,
        path=request.path,
        query=request.query_string.decode("latin-1"),
        body=request.get_data(cache=True),
        window=cfg["SIGNATURE_WINDOW"],
    )
    # A cache hit reads no database; a miss reads one row in autocommit (no BEGIN/ROLLBACK).
    authenticator = current_app.extensions["yibao.institutions"]
    g.institution, g.institution_claim = authenticator.authenticate(
        redis_ext.client, req, debug=cfg["SIGNATURE_DEBUG"], defer=defer, fresh=fresh
    )
    return g.institution_claim


def current_user() -> tokens.CurrentUser:
    return g.user


def current_institution() -> inst_auth.CurrentInstitution:
    return g.institution


def current_claim() -> NonceClaim:
    """The signed call's nonce claim: `claim(key, ttl)` burns the nonce and SET NX `key` at once."""
    return g.institution_claim


JSON_METHODS = {"POST", "PUT", "PATCH"}


def refuse_nul_in_path() -> None:
    """A path with NUL names no resource (and PostgreSQL could not even look it up)."""
    if "\x00" in request.path:
        raise AppError("NOT_FOUND")


def check_json_body() -> None:
    """Refuse non-JSON bodies up front with a clear code instead of a field-missing error."""
    if request.method not in JSON_METHODS or not request.path.startswith("/api/"):
        return
    if request.routing_exception is not None:
        return  # an unknown URL or method answers 404/405 whatever the body
    length = request.content_length
    if length is not None and length > current_app.config["MAX_CONTENT_LENGTH"]:
        raise AppError("PAYLOAD_TOO_LARGE")
    body = request.get_data(cache=True)
    if length is None and len(body) >= current_app.config["MAX_CONTENT_LENGTH"]:
        # A chunked body is cut at the limit without an error; the cut must not pass as a body.
        raise AppError("PAYLOAD_TOO_LARGE")
    if not body:
        return
    if not request.is_json:
        raise AppError("UNSUPPORTED_MEDIA_TYPE")
    try:
        request.get_json(force=False, silent=False, cache=True)
    except Exception as exc:
        raise AppError("MALFORMED_JSON") from exc
