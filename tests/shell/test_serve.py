"""`make run` end to end: python -m yibao.serve on embedded defaults, then a clean shutdown."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support import sign_headers

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, headers: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - local test server
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            found.append(f"{pid}: {cmd}")
    return found


@pytest.mark.slow
def test_run_command_serves_demo_and_stops_cleanly(tmp_path):
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "DATABASE_URL",
            "REDIS_URL",
            "REDIS_CLUSTER_URL",
            "ADMIN_TOKEN",
            "SECRET_KEY",
            "PROMETHEUS_MULTIPROC_DIR",
        }
    }
    env.update(
        PORT=str(port),
        YIBAO_INSTANCE_DIR=str(tmp_path / "instance"),
        WEB_CONCURRENCY="2",
        PYTHONUNBUFFERED="1",
        TMPDIR=str(tmp_path),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "yibao.serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, body = _get(f"{base}/readyz")
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        assert status == 200, "".join(out)
        text = "".join(out)
        assert f"API docs (Swagger UI): {base}/api/v1/docs" in text
        assert f"{base}/api/v1/openapi.json" in text
        admin = re.search(r"ADMIN_TOKEN=(\S+)\s+\(generated", text)
        assert admin, text
        redis_url = re.search(r"Redis: (redis://\S+)", text).group(1)
        demo, _ = json.JSONDecoder().raw_decode(text, text.index("{", text.index("Demo credentials")))
        assert {"employee", "resident"} <= set(demo["persons"])
        assert set(demo["institutions"]) == {"pharmacy", "hospital", "online_pharmacy"}
        assert (tmp_path / "instance" / "yibao.sqlite3").exists()

        # The banner says who goes where and why, with balances, and gives a ready token (development).
        assert "Who goes where" in text
        assert re.search(r"张三 \(employee: employee insurance, opening balance 500\.00 yuan, psn_", text)
        assert "-> 大理康民大药房 (pharmacy), 02121" in text
        assert re.search(r"李四 \(resident: resident insurance, no personal account", text)
        assert "-> 大理州人民医院 (hospital), 01101" in text
        assert "make demo" in text
        token = re.search(r"Authorization: Bearer (\S+)", text)
        assert token, text
        st, account = _get(f"{base}/api/v1/accounts/me", {"Authorization": f"Bearer {token.group(1)}"})
        assert st == 200 and account["psn_no"] == demo["persons"]["employee"]["psn_no"], account
        assert account["balance_fen"] == 50000
        # `make demo` finds the generated operator token in the development-only credentials file.
        creds_file = tmp_path / "instance" / "demo-credentials.json"
        assert (creds_file.stat().st_mode & 0o777) == 0o600
        assert json.loads(creds_file.read_text())["admin_token"] == admin.group(1)
        assert "admin_token" not in demo  # printed once, as ADMIN_TOKEN=…
        assert len(list(tmp_path.glob("yibao-metrics-*"))) == 1

        # The operator token works; the Swagger page is served.
        psn = demo["persons"]["employee"]["psn_no"]
        st, person = _get(f"{base}/api/v1/admin/persons/{psn}", {"Authorization": f"Bearer {admin.group(1)}"})
        assert st == 200 and person["has_personal_account"] is True
        with urllib.request.urlopen(f"{base}/api/v1/docs", timeout=5) as resp:  # noqa: S310
            assert resp.status == 200 and b"swagger-ui" in resp.read()

        # One signed institution request with the printed credentials.
        creds = demo["institutions"]["pharmacy"]
        path = "/api/v1/institutions/me"
        st, me = _get(base + path, sign_headers(creds["key_id"], creds["secret"], "GET", path, b""))
        assert st == 200, me
        assert me["org_id"] == creds["org_id"] and me["kind"] == "pharmacy"
        st, err = _get(base + path, sign_headers(creds["key_id"], "wrong", "GET", path, b""))
        assert st == 401 and err["code"] == "INSTITUTION_AUTH_FAILED"
        metrics = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()  # noqa: S310
        assert 'endpoint="/api/v1/institutions/me"' in metrics  # gathered across gunicorn workers
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert code == 0, "".join(out)
    reader.join(5)
    time.sleep(0.5)
    redis_port = redis_url.rsplit(":", 1)[1].split("/")[0]
    assert not [p for p in _processes_mentioning(f"127.0.0.1:{redis_port}") if "valkey" in p]
    assert not _processes_mentioning(f"127.0.0.1:{port}")  # no gunicorn left behind
    assert not list(tmp_path.glob("yibao-metrics-*"))  # the metrics scratch folder was removed


def test_gunicorn_access_log_only_when_asked() -> None:
    """Off by default: no --access-logfile at all (gunicorn then formats no line), not /dev/null."""
    from yibao.config import server_settings
    from yibao.serve import gunicorn_command

    quiet = gunicorn_command(server_settings({}))
    assert "--access-logfile" not in quiet and "/dev/null" not in quiet
    assert quiet[-1] == "yibao.wsgi:app"
    loud = gunicorn_command(server_settings({"YIBAO_GUNICORN_ACCESS_LOG": "1"}))
    assert loud[loud.index("--access-logfile") + 1] == "-"
    assert loud[-1] == "yibao.wsgi:app"
