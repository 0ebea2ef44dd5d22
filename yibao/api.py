"""flask-smorest glue: the Api, a Blueprint that documents auth and errors once, a strict Schema."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable, Mapping
from typing import Any

import marshmallow as ma
from flask import Flask, current_app, g, request
from flask_smorest import Api as _Api
from flask_smorest import Blueprint as _Blueprint

from . import errors
from .auth import institutions as inst_auth
from .auth import tokens
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
        "type": "apiKey",
        "in": "header",
        "name": "X-Yb-Signature",
        "description": (
            "Institutions send X-Yb-Key (key id), X-Yb-Timestamp (unix seconds, ±300 s), X-Yb-Nonce "
            "(unique per request) and X-Yb-Signature = hex HMAC-SHA256(secret, "
            "METHOD\\nPATH[?QUERY]\\nTIMESTAMP\\nNONCE\\nSHA256_HEX(BODY)); '?QUERY' only when there is "
            "a query string."
        ),
    },
}

PROBLEM_SCHEMA = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string"},
        "detail": {"type": "string"},
        "errors": {"type": "object"},
    },
}


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


class Api(_Api):
    """Api whose errors are RFC 9457 problem+json."""

    def handle_http_exception(self, error: Exception) -> Any:  # flask-smorest's hook
        return errors.handle_http_exception(error)  # type: ignore[arg-type]

    def init_app(self, app: Flask, *args: Any, **kwargs: Any) -> None:
        super().init_app(app, *args, **kwargs)
        for name, scheme in SECURITY_SCHEMES.items():
            self.spec.components.security_scheme(name, scheme)
        self.spec.components.schema("Problem", PROBLEM_SCHEMA)


def _problem_response(description: str) -> dict:
    return {"description": description, "content": {"application/problem+json": {"schema": PROBLEM_SCHEMA}}}


class Blueprint(_Blueprint):
    """Adds `user`, `institution` and `admin` decorators that authenticate and document."""

    def _auth(self, scheme: str, check: Callable[[], None], codes: dict[int, str]) -> Callable:
        def decorator(view: Callable) -> Callable:
            @functools.wraps(view)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                check()
                return view(*args, **kwargs)

            doc = {
                "security": [{scheme: []}],
                "responses": {str(k): _problem_response(v) for k, v in codes.items()},
            }
            return self.doc(**doc)(wrapper)

        return decorator

    def user(self, view: Callable) -> Callable:
        return self._auth("UserBearer", authenticate_user, {401: "TOKEN_INVALID"})(view)

    def institution(self, view: Callable) -> Callable:
        return self._auth(
            "InstitutionSignature",
            authenticate_institution,
            {401: "INSTITUTION_AUTH_FAILED", 503: "REPLAY_STORE_UNAVAILABLE"},
        )(view)

    def admin(self, view: Callable) -> Callable:
        return self._auth("AdminBearer", authenticate_admin, {401: "ADMIN_AUTH_FAILED"})(view)


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
    # One statement (session and person by session id): autocommit saves BEGIN/ROLLBACK round trips.
    with db.uow(readonly=True, autocommit=True) as uow:
        g.user = tokens.authenticate(uow, token, secret=current_app.config["SECRET_KEY"])


def authenticate_institution() -> None:
    h = request.headers
    # One statement (the institution by key id): autocommit saves BEGIN/ROLLBACK round trips.
    with db.uow(readonly=True, autocommit=True) as uow:
        g.institution = inst_auth.authenticate(
            uow,
            redis_ext.client,
            key_id=h.get("X-Yb-Key"),
            timestamp=h.get("X-Yb-Timestamp"),
            nonce=h.get("X-Yb-Nonce"),
            signature=h.get("X-Yb-Signature"),
            method=request.method,
            path=request.path,
            query=request.query_string.decode("latin-1"),
            body=request.get_data(cache=True),
            window=current_app.config["SIGNATURE_WINDOW"],
        )


def current_user() -> tokens.CurrentUser:
    return g.user


def current_institution() -> inst_auth.CurrentInstitution:
    return g.institution


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
