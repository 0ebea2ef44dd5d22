"""The two pages people look at, served by the service itself: /app/ (the insured person's phone) and
/counter/ (the pharmacy or hospital counter console).

Plain files under static/ (no build step, no CDN): app/ and counter/ each hold an index.html, a script
module and a style sheet; shared/ holds what both use (API calls, problem texts, WebCrypto signing,
zh-CN/en strings) and is served under both prefixes so that the modules import it relatively. Only files
that exist in those folders at start-up are served. Every page answer carries a Content-Security-Policy
that allows nothing but this origin (no inline script or style, no data: images: the QR SVG is parsed
into the DOM). /app/sw.js is the app's service worker: it keeps the app shell (SHELL, versioned by
BUILD, the hash of those files) for a start with no network, and never touches /api/. See docs/pages.md.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from flask import Blueprint, Flask, Response, abort, send_from_directory

STATIC = Path(__file__).parent / "static"
CSP = (
    "default-src 'self'; script-src 'self'; worker-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; media-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
MIMETYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}


def _files(folder: str) -> frozenset[str]:
    root = STATIC / folder
    return frozenset(p.name for p in root.iterdir() if p.is_file() and not p.name.startswith("."))


PAGES = {name: _files(name) for name in ("app", "counter")}
SHARED = _files("shared")
SW = "sw.js"  # the service worker's template: served by service_worker(), not as a plain file

# The app shell the service worker caches (URL → file): the page, its module, styles, strings, the
# offline generator and the vendored QR encoder. BUILD (the hash of their bytes) names the cache, so a
# release with any change installs a new worker that replaces the old cache.
ROOT_STATIC = Path(__file__).parents[1] / "static"
SHELL: dict[str, Path] = {
    "/app/": STATIC / "app" / "index.html",
    **{f"/app/{n}": STATIC / "app" / n for n in sorted(PAGES["app"] - {"index.html", SW})},
    **{f"/app/shared/{n}": STATIC / "shared" / n for n in sorted(SHARED)},
    "/static/offline/yo1.js": ROOT_STATIC / "offline" / "yo1.js",
    "/static/vendor/qrcode-generator/qrcode.js": ROOT_STATIC / "vendor" / "qrcode-generator" / "qrcode.js",
}


def _build() -> str:
    h = hashlib.sha256()
    for url, path in sorted(SHELL.items()):
        h.update(url.encode() + b"\0" + path.read_bytes() + b"\0")
    h.update((STATIC / "app" / SW).read_bytes())
    return h.hexdigest()[:16]


BUILD = _build()

blp = Blueprint("pages", __name__)


def _secure(resp: Response, page: str) -> Response:
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["Cache-Control"] = "no-cache"  # revalidate: a new release is picked up at once
    # Only the counter may ask for the camera (BarcodeDetector scanning).
    resp.headers["Permissions-Policy"] = "camera=(self)" if page == "counter" else "camera=()"
    return resp


def _send(folder: Path, name: str, page: str) -> Response:
    resp = send_from_directory(folder, name, max_age=0)
    mimetype = MIMETYPES.get(Path(name).suffix)
    if mimetype:
        resp.mimetype = mimetype
    return _secure(resp, page)


@blp.get("/<any(app, counter):page>/")
def index(page: str) -> Response:
    return _send(STATIC / page, "index.html", page)


@blp.get("/app/sw.js")
def service_worker() -> Response:
    """The app's service worker with its build and shell list (a new build → a new worker → a new cache)."""
    head = f"const BUILD = {json.dumps(BUILD)};\nconst SHELL = {json.dumps(list(SHELL))};\n"
    body = head + (STATIC / "app" / SW).read_text(encoding="utf-8")
    resp = _secure(Response(body, mimetype="text/javascript"), "app")
    resp.headers["Service-Worker-Allowed"] = "/app/"  # its scope: the app's pages, no wider
    return resp


@blp.get("/<any(app, counter):page>/<name>")
def own(page: str, name: str) -> Response:
    if name not in PAGES[page] or (page, name) == ("app", SW):
        abort(404)
    return _send(STATIC / page, name, page)


@blp.get("/<any(app, counter):page>/shared/<name>")
def shared(page: str, name: str) -> Response:
    if name not in SHARED:
        abort(404)
    return _send(STATIC / "shared", name, page)


def init_app(app: Flask) -> None:
    """Serve /app/ and /counter/ (registered with yibao.events, their push channel)."""
    app.register_blueprint(blp)
