"""`make run`: migrate, seed demo data, start an embedded Valkey if needed, serve with gunicorn."""

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


def main() -> int:
    # Until gunicorn runs, a SIGTERM must still unwind through atexit (which stops the embedded Valkey).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    port = int(os.environ.get("PORT", "8000"))
    host = os.environ.get("HOST", "127.0.0.1")
    workers = os.environ.get("WEB_CONCURRENCY", "4")
    env = os.environ.copy()

    from yibao.redis_store import start_embedded_server

    if not env.get("REDIS_URL") and not env.get("REDIS_CLUSTER_URL"):
        env["REDIS_URL"] = start_embedded_server()
        os.environ["REDIS_URL"] = env["REDIS_URL"]
    generated_admin = not env.get("ADMIN_TOKEN")
    if generated_admin:
        env["ADMIN_TOKEN"] = os.environ["ADMIN_TOKEN"] = secrets.token_urlsafe(24)
    if not env.get("PROMETHEUS_MULTIPROC_DIR"):
        env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="yibao-metrics-")
        atexit.register(shutil.rmtree, env["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = env["PROMETHEUS_MULTIPROC_DIR"]

    from yibao import create_app
    from yibao.config import INSTANCE_DIR
    from yibao.db import db
    from yibao.migrate import upgrade
    from yibao.seed import seed_demo

    app = create_app()
    upgrade(app.config["DATABASE_URL"])
    with app.app_context(), db.uow() as uow:
        demo = seed_demo(uow, INSTANCE_DIR / "demo-credentials.json")
    db_url = app.config["DATABASE_URL"]
    app.extensions["yibao.db"]["engine"].dispose()

    base = f"http://{host}:{port}"
    print("=" * 72, flush=True)
    print(f"yibao is starting on {base}")
    print(f"API docs (Swagger UI): {base}/api/v1/docs")
    print(f"OpenAPI document:      {base}/api/v1/openapi.json")
    print(
        f"Database: {db_url.split('@')[-1]}   Redis: {env.get('REDIS_URL') or env.get('REDIS_CLUSTER_URL')}"
    )
    print(
        f"ADMIN_TOKEN={env['ADMIN_TOKEN']}"
        + ("   (generated; set ADMIN_TOKEN to choose)" if generated_admin else "")
    )
    print("Demo credentials (also in instance/demo-credentials.json):")
    print(json.dumps(demo, ensure_ascii=False, indent=2))
    print("=" * 72, flush=True)

    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        workers,
        "--bind",
        f"{host}:{port}",
        "--access-logfile",
        "-" if os.environ.get("YIBAO_GUNICORN_ACCESS_LOG") else "/dev/null",
        "--graceful-timeout",
        "10",
        "yibao.wsgi:app",
    ]
    proc = subprocess.Popen(cmd, env=env)  # noqa: S603 - fixed argv

    def forward(signum: int, _frame: object) -> None:
        proc.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    return proc.wait()


if __name__ == "__main__":
    sys.exit(main())
