"""Shell test helpers: a test-only blueprint (user, institution and crashing routes), row counts."""

from __future__ import annotations

from typing import Any

from flask import Flask, request
from sqlalchemy import text

from yibao import create_app
from yibao.api import Blueprint, current_institution, current_user

SQL_LEAK = "SELECT id_number_enc FROM persons WHERE secret = 'hunter2'"


def _test_blueprint() -> Blueprint:
    """Routes that exist only in tests: they exercise the auth decorators and the error handler."""
    blp = Blueprint("shelltest", __name__, url_prefix="/api/v1/_test")

    @blp.route("/whoami", methods=["GET"])
    @blp.user
    def whoami() -> Any:
        u = current_user()
        return {"psn_no": u.psn_no, "session_id": u.session_id}

    @blp.route("/inst", methods=["GET", "POST"])
    @blp.institution
    def inst() -> Any:
        i = current_institution()
        return {"org_id": i.org_id, "kind": i.kind, "body_len": len(request.get_data()), "q": request.args}

    @blp.route("/boom", methods=["GET"])
    def boom() -> Any:
        raise RuntimeError(SQL_LEAK)

    return blp


def api_of(app: Flask) -> Any:
    return app.extensions["flask-smorest"]["apis"][""]["ext_obj"]


def build_app(config: dict) -> Flask:
    app = create_app(config)
    api_of(app).register_blueprint(_test_blueprint())
    return app


def count_rows(app: Flask, table: str) -> int:
    """Rows in a table, read straight from the database."""
    with app.extensions["yibao.db"]["engine"].connect() as conn:
        return conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()  # noqa: S608


SHELL_TABLES = ("persons", "cross_region_filings", "institutions", "auth_sessions", "refresh_tokens")


def snapshot(app: Flask) -> dict[str, int]:
    return {t: count_rows(app, t) for t in SHELL_TABLES}
