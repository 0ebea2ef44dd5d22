"""The API docs page: Swagger UI from a pinned, packaged copy, served from this origin, that signs.

Swagger UI comes from the PyPI package `flask-swagger-ui` (pinned in pyproject.toml; its `dist/` is the
upstream swagger-ui-dist of the version in `dist/VERSION`, Apache-2.0, licence at
/api/v1/docs/assets/LICENSE). Only its files are used, never its blueprint, and only the files in ASSETS
are served. yibao/static/docs/yb-docs.js adds the institution signing to "Try it out". The page's
Content-Security-Policy allows nothing but this origin, so a page that works here works with no network.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from flask import Blueprint, Flask, Response, abort, current_app, send_from_directory

SWAGGER_DIST = Path(str(resources.files("flask_swagger_ui") / "dist"))
STATIC = Path(__file__).parent / "static" / "docs"
ASSETS = frozenset(
    {"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "favicon-16x16.png", "LICENSE", "VERSION"}
)
OWN = frozenset({"yb-docs.js", "yb-docs.css"})
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def swagger_ui_version() -> str:
    return (SWAGGER_DIST / "VERSION").read_text().strip().lstrip("v")


PAGE = """<!doctype html>
<html lang="en" data-spec="{spec}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>yibao API</title>
<link rel="icon" type="image/png" href="{base}/assets/favicon-32x32.png">
<link rel="stylesheet" href="{base}/assets/swagger-ui.css?v={version}">
<link rel="stylesheet" href="{base}/yb-docs.css">
</head>
<body>
<div id="yb-panel">
  <h1>yibao API</h1>
  <form id="yb-institution" autocomplete="off">
    <label>Institution key id <input name="key_id" pattern="[A-Za-z0-9_-]{{1,64}}" spellcheck="false"></label>
    <label>Secret <input name="secret" type="password" spellcheck="false"></label>
    <button type="submit">Sign institution requests</button>
    <button type="reset">Stop signing</button>
    <span id="yb-institution-state" data-signing="no" aria-live="polite">not signing</span>
  </form>
  <p>The secret stays in this page's memory and signs "Try it out" requests of institution operations
  (HMAC-SHA256 with timestamp, nonce and body hash). Users and operators use "Authorize" for their bearer
  tokens. Swagger UI {version}, served from this service (Apache-2.0,
  <a href="{base}/assets/LICENSE">licence</a>).</p>
</div>
<div id="swagger-ui"></div>
<script src="{base}/assets/swagger-ui-bundle.js?v={version}"></script>
<script src="{base}/yb-docs.js"></script>
</body>
</html>
"""

blp = Blueprint("docs_page", __name__)


def _prefix() -> str:
    return current_app.config["OPENAPI_URL_PREFIX"].rstrip("/") + current_app.config["YB_DOCS_PATH"]


@blp.get("/")
def page() -> Response:
    cfg = current_app.config
    spec = cfg["OPENAPI_URL_PREFIX"].rstrip("/") + "/" + cfg["OPENAPI_JSON_PATH"]
    html = PAGE.format(base=_prefix(), spec=spec, version=swagger_ui_version())
    resp = Response(html, mimetype="text/html")
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@blp.get("/assets/<name>")
def asset(name: str) -> Response:
    if name not in ASSETS:
        abort(404)
    resp = send_from_directory(SWAGGER_DIST, name, max_age=86400)
    if name in {"LICENSE", "VERSION"}:
        resp.mimetype = "text/plain"
    return resp


@blp.get("/<name>")
def own(name: str) -> Response:
    if name not in OWN:
        abort(404)
    return send_from_directory(STATIC, name, max_age=300)


def init_app(app: Flask) -> None:
    """Serve the docs page at OPENAPI_URL_PREFIX + YB_DOCS_PATH (/api/v1/docs)."""
    app.config.setdefault("YB_DOCS_PATH", "/docs")
    prefix = app.config["OPENAPI_URL_PREFIX"].rstrip("/") + app.config["YB_DOCS_PATH"]
    app.register_blueprint(blp, url_prefix=prefix)
