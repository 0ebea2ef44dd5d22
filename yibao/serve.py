"""`make run`: migrate, seed demo data (development only), start an embedded Valkey if needed, serve
with gunicorn (yibao/gunicorn_conf.py: problem+json refusals, explicit request limits).

With YIBAO_ENV=production nothing is seeded and no secret is printed: the start refuses, with one line
on stderr and exit status 2, unless SECRET_KEY, ADMIN_TOKEN and REDIS_URL or REDIS_CLUSTER_URL are set
(yibao.config decides); the embedded Valkey is for development only.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from yibao.config import ServerSettings, server_settings

EXIT_CONFIG = 2


def without_credentials(url: str) -> str:
    """A URL fit for a log line: user and password removed."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def refuse(message: str) -> int:
    print(f"yibao: cannot start: {message}", file=sys.stderr, flush=True)
    return EXIT_CONFIG


def demo_session(app: Any, demo: dict[str, Any]) -> dict[str, Any] | None:
    """A ready token pair of the demo employee when the sandbox identity provider is on (never in
    production), else None."""
    if not app.config["SANDBOX_IDENTITY_ENABLED"] or app.config["YIBAO_ENV"] == "production":
        return None
    from yibao.db import db
    from yibao.identity.providers import SandboxIdentityProvider
    from yibao.redis_store import redis_ext
    from yibao.seed import demo_employee_session

    provider = app.extensions["yibao.identity"]
    if not isinstance(provider, SandboxIdentityProvider):
        return None
    with app.app_context(), db.uow() as uow:
        pair = demo_employee_session(uow, demo, provider, redis_ext.client, app.config)
        uow.commit()
    return pair


def gunicorn_command(settings: ServerSettings) -> list[str]:
    """The gunicorn command line of `make run` for these server settings."""
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        "python:yibao.gunicorn_conf",
        "--workers",
        str(settings.workers),
        "--bind",
        f"{settings.host}:{settings.port}",
        "--graceful-timeout",
        "10",
    ]
    if settings.access_log:
        # Without the option gunicorn skips its access log entirely; pointing it at /dev/null would
        # still format every line (4-5 % of a verification's CPU in a worker, by py-spy).
        cmd += ["--access-logfile", "-"]
    return [*cmd, "yibao.wsgi:app"]


def main() -> int:
    # Until gunicorn runs, a SIGTERM must still unwind through atexit (which stops the embedded Valkey).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from yibao import config

    try:
        settings = server_settings()
        cfg = config.load()  # production without SECRET_KEY / ADMIN_TOKEN / Redis is refused here
    except (RuntimeError, ValueError) as exc:
        return refuse(str(exc))
    production = cfg["YIBAO_ENV"] == "production"

    # The gunicorn workers read their configuration from the environment: what is decided here
    # (an embedded Valkey, a development operator token, the metrics folder) is handed on in it.
    from yibao.redis_store import start_embedded_server

    if not cfg["REDIS_URL"] and not cfg["REDIS_CLUSTER_URL"]:  # never in production: refused above
        os.environ["REDIS_URL"] = start_embedded_server()
    generated_admin = not cfg["ADMIN_TOKEN"]  # never in production: config.load refused that above
    if generated_admin:
        os.environ["ADMIN_TOKEN"] = secrets.token_urlsafe(24)
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="yibao-metrics-")
        atexit.register(shutil.rmtree, os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)

    from yibao import create_app, partitions
    from yibao.config import INSTANCE_DIR
    from yibao.db import db, utcnow
    from yibao.migrate import upgrade

    app = create_app()
    upgrade(app.config["DATABASE_URL"])
    with app.app_context():  # this and next month's partitions (PostgreSQL), as `yibao db upgrade` does
        partitions.ensure_all(app, db.engine, utcnow())
    demo = None
    session = None
    credentials_file = INSTANCE_DIR / "demo-credentials.json"
    if app.config["SEED_DEMO"]:  # False in production whatever YIBAO_SEED_DEMO says
        from yibao.seed import seed_demo

        with app.app_context(), db.uow() as uow:
            demo = seed_demo(uow, credentials_file)
        demo.pop("admin_token", None)  # the token of an earlier start, written below
        session = demo_session(app, demo)
        # `make demo` (another process) finds the generated operator token here; an operator's own
        # token is never written. Development only: demo data is never seeded in production.
        saved = dict(demo, admin_token=app.config["ADMIN_TOKEN"]) if generated_admin else demo
        credentials_file.write_text(json.dumps(saved, ensure_ascii=False, indent=2))
        credentials_file.chmod(0o600)
    db_url = app.config["DATABASE_URL"]
    redis_url = app.config["REDIS_URL"] or app.config["REDIS_CLUSTER_URL"]
    app.extensions["yibao.db"]["engine"].dispose()

    base = f"http://{settings.host}:{settings.port}"
    print("=" * 72, flush=True)
    print(f"yibao is starting on {base}" + ("   (YIBAO_ENV=production)" if production else ""))
    print(f"API docs (Swagger UI): {base}/api/v1/docs")
    print(f"The insured's page:    {base}/app/      the counter console: {base}/counter/")
    print(f"OpenAPI document:      {base}/api/v1/openapi.json")
    print(f"Database: {without_credentials(db_url)}   Redis: {without_credentials(redis_url)}")
    if generated_admin:  # development only; an operator's own token is never echoed
        print(f"ADMIN_TOKEN={app.config['ADMIN_TOKEN']}   (generated; set ADMIN_TOKEN to choose)")
    if demo is not None:
        print("Demo credentials (also in instance/demo-credentials.json; YIBAO_SEED_DEMO=0 skips them):")
        print(json.dumps(demo, ensure_ascii=False, indent=2))
        from yibao.seed import guide_lines

        print("\n".join(guide_lines(demo)))
        if session is not None:
            minutes = session["expires_in"] // 60
            print(f"Access token of the demo employee ({minutes} min; sandbox activation, development only):")
            print(f"  Authorization: Bearer {session['access_token']}")
            print(f"  refresh token: {session['refresh_token']}")
        print("Play the four journeys against this server in another terminal: make demo")
    print("=" * 72, flush=True)

    cmd = gunicorn_command(settings)
    proc = subprocess.Popen(cmd, env=os.environ.copy())  # noqa: S603 - fixed argv

    def forward(signum: int, _frame: object) -> None:
        proc.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    return proc.wait()


if __name__ == "__main__":
    sys.exit(main())
