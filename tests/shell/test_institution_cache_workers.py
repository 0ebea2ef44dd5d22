"""Real gunicorn workers, each with its own institution cache: a disabled institution is refused on
the very next request in EVERY worker, and a rotated secret likewise (the old one refused at once,
the new one accepted). Each kept-alive connection is tied to the worker process that holds it
(read from /proc), so every worker is asked, not just whichever one the kernel picks."""

from __future__ import annotations

import http.client
import json
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.servers import gunicorn
from tests.support import ADMIN_TOKEN, TEST_SECRET, Institution, Yb, sign_headers
from tests.voucher.support import SCAN_FIELDS, VoucherDriver

WORKERS = 3
ME = "/api/v1/institutions/me"


def _server_pids(port: int) -> tuple[int, list[int]]:
    """(master, workers) of the gunicorn bound to this port."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if b"gunicorn" in b" ".join(cmdline) and f"127.0.0.1:{port}".encode() in cmdline:
            found[int(entry.name)] = ppid
    masters = [pid for pid, ppid in found.items() if ppid not in found]
    assert len(masters) == 1, found
    return masters[0], [pid for pid in found if pid != masters[0]]


def _socket_inode(server_port: int, client_port: int) -> str | None:
    """The inode of the server side of an established loopback connection from client_port."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        cols = line.split()
        local, remote, state, inode = cols[1], cols[2], cols[3], cols[9]
        ports = (int(local.split(":")[1], 16), int(remote.split(":")[1], 16))
        if state == "01" and ports == (server_port, client_port):
            return inode
    return None


def _owner(inode: str, pids: list[int]) -> int | None:
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            for fd in fd_dir.iterdir():
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
        except OSError:
            continue
    return None


class Worker:
    """A kept-alive connection served by one known worker process."""

    def __init__(self, conn: http.client.HTTPConnection, pid: int) -> None:
        self.conn, self.pid = conn, pid

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict | None = None
    ) -> tuple[int, dict]:
        self.conn.request(method, path, body=body or None, headers=headers or {})
        resp = self.conn.getresponse()
        data = resp.read()
        assert resp.getheader("Connection", "").lower() != "close"
        return resp.status, (json.loads(data) if data else {})

    def signed(
        self, inst: Institution, method: str = "GET", path: str = ME, body: Any = None
    ) -> tuple[int, dict]:
        raw = b"" if body is None else json.dumps(body).encode()
        h = sign_headers(inst.key_id, inst.secret, method, path, raw)
        if raw:
            h["Content-Type"] = "application/json"
        return self.request(method, path, raw, h)


def connect_every_worker(url: str) -> list[Worker]:
    port = int(url.rsplit(":", 1)[1])
    _, pids = _server_pids(port)
    assert len(pids) == WORKERS
    by_pid: dict[int, Worker] = {}
    spare = []
    for _ in range(200):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/healthz")
        conn.getresponse().read()  # accepted by a worker now
        inode = _socket_inode(port, conn.sock.getsockname()[1])
        pid = _owner(inode, pids) if inode else None
        if pid is not None and pid not in by_pid:
            by_pid[pid] = Worker(conn, pid)
            if len(by_pid) == WORKERS:
                break
        else:
            spare.append(conn)  # kept open, so the next connection is likelier to go elsewhere
    for conn in spare:
        conn.close()
    assert len(by_pid) == WORKERS, f"only reached workers {sorted(by_pid)} of {pids}"
    return list(by_pid.values())


@pytest.fixture
def workers(app, yb, database_url, redis_url):
    VoucherDriver(yb, app).issue(yb.person())  # the signing key exists before the workers start
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": TEST_SECRET,
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "YIBAO_SEED_DEMO": "0",
        "GUNICORN_CMD_ARGS": "--keep-alive 120",  # each test connection stays with its worker
    }
    with gunicorn(env, workers=WORKERS) as url:
        ws = connect_every_worker(url)
        yield ws
        for w in ws:
            w.conn.close()


def _admin(w: Worker, method: str, path: str, body: Any = None) -> dict:
    raw = b"" if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
    status, data = w.request(method, f"/api/v1/admin{path}", raw, headers)
    assert status in (200, 201), data
    return data


@pytest.mark.slow
def test_disable_and_rotation_reach_every_worker_at_once(app, yb: Yb, workers: list[Worker]):
    inst = yb.institution()
    for w in workers:
        assert w.signed(inst)[0] == 200
    # Every worker serves it from its cache: a change behind the registry's back (raw SQL) is not seen.
    engine = app.extensions["yibao.db"]["engine"]
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE institutions SET status = 'disabled' WHERE org_id = :o"), {"o": inst.org_id}
        )
    assert [w.signed(inst)[0] for w in workers] == [200] * WORKERS
    with engine.begin() as conn:
        conn.execute(text("UPDATE institutions SET status = 'active' WHERE org_id = :o"), {"o": inst.org_id})

    # Disabled through the admin API (served by one worker): refused by every worker, next request.
    _admin(workers[0], "PATCH", f"/institutions/{inst.org_id}", {"status": "disabled"})
    for w in workers:
        status, body = w.signed(inst)
        assert (status, body["code"], body["reason"]) == (403, "INSTITUTION_DISABLED", "KEY_DISABLED"), w.pid
    _admin(workers[-1], "PATCH", f"/institutions/{inst.org_id}", {"status": "active"})
    assert [w.signed(inst)[0] for w in workers] == [200] * WORKERS

    # Rotated: the old pair refused at once everywhere, the new one accepted everywhere.
    new = _admin(workers[1], "POST", f"/institutions/{inst.org_id}/secret-rotations")
    rotated = Institution(inst.org_id, new["key_id"], new["secret"], inst.region, inst.kind, inst.services)
    for w in workers:
        status, body = w.signed(inst)
        assert (status, body["reason"]) == (401, "KEY_UNKNOWN"), w.pid
        assert w.signed(rotated)[0] == 200, w.pid


@pytest.mark.slow
def test_scans_of_a_disabled_institution_refused_in_every_worker(app, yb: Yb, workers: list[Worker]):
    vd = VoucherDriver(yb, app)
    p, inst = yb.person(), yb.institution()

    def scan(w: Worker, code: str) -> tuple[int, dict]:
        body = {"qr_content": code, "business_type": "02121", **SCAN_FIELDS, "out_biz_no": f"b-{w.pid}"}
        return w.signed(inst, "POST", "/api/v1/verifications", body)

    for w in workers:
        assert scan(w, vd.issue(p)["qr_content"])[0] == 200  # cached in every worker
    codes = [vd.issue(p)["qr_content"] for _ in workers]
    _admin(workers[0], "PATCH", f"/institutions/{inst.org_id}", {"status": "disabled"})
    for w, code in zip(workers, codes, strict=True):
        status, body = scan(w, code)
        assert (status, body["code"]) == (403, "INSTITUTION_DISABLED"), w.pid
    _admin(workers[0], "PATCH", f"/institutions/{inst.org_id}", {"status": "active"})
    for w, code in zip(workers, codes, strict=True):
        assert scan(w, code)[0] == 200, w.pid  # the refused scans consumed nothing
