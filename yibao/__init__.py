"""yibao: the application shell (app factory, config, database, Redis, auth, errors, registry)."""

from __future__ import annotations

import importlib
from typing import Any

from flask import Flask, Response
from flask.sessions import SessionInterface


class NoSessions(SessionInterface):
    """yibao sets no cookies: every caller authenticates with headers. Flask's default interface
    would build a signing serializer from SECRET_KEY (the master key) on every request; this one
    gives Flask's null session at once and never saves anything."""

    def open_session(self, app: Flask, request: object) -> None:
        return None  # Flask then uses make_null_session(): `session` is an empty, read-only mapping

    def save_session(self, app: Flask, session: object, response: Response) -> None:
        return None


class YibaoFlask(Flask):
    """Flask whose automatic OPTIONS answer is a 204 with `Allow` (no HTML body, no content type),
    and that has no cookie sessions."""

    session_interface = NoSessions()

    def make_default_options_response(self) -> Response:
        rv = super().make_default_options_response()  # Allow: the methods of this path
        rv.status_code = 204
        rv.set_data(b"")
        del rv.headers["Content-Type"]
        return rv


# Domain packages, each exposing register(app, api). The shell imports them only here.
DOMAINS = ("voucher", "payments", "family_accounts", "supervision", "benefits")


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the Flask application."""
    # Imported here: names like `db` and `api` must not shadow the yibao.db / yibao.api modules.
    from . import config as config_module
    from . import cors, errors, events, observability
    from .api import Api, check_json_body, refuse_nul_in_path
    from .auth import institution_cache
    from .db import db
    from .identity.providers import load_provider
    from .redis_store import redis_ext

    app = YibaoFlask(__name__)
    app.config.update(config_module.load(test_config))
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.url_map.strict_slashes = False

    observability.init_app(app)
    cors.init_app(app)
    db.init_app(app)
    redis_ext.init_app(app)
    institution_cache.init_app(app, db.autocommit)
    app.extensions["yibao.identity"] = load_provider(app.config)
    app.before_request(refuse_nul_in_path)
    app.before_request(check_json_body)

    api = Api(app)  # one per app: the OpenAPI spec must not accumulate across test apps
    errors.init_app(app)  # after smorest, so problem+json handlers win

    from .identity.routes import blp as identity_blp
    from .registry.routes import blp as admin_blp
    from .registry.routes import inst_blp

    api.register_blueprint(admin_blp)
    api.register_blueprint(identity_blp)
    api.register_blueprint(inst_blp)
    events.register(app, api)  # the push channel and the pages that use it (/app/, /counter/)
    for name in DOMAINS:
        importlib.import_module(name).register(app, api)

    from .cli import register_cli

    register_cli(app)
    return app
