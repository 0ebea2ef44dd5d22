"""The benchmark's layer classifier (bench/layers.py): files and built-ins go to the right layer, and the
time of standard-library and built-in helpers goes to the layer that called them."""

from __future__ import annotations

import cProfile
import hmac
import io
import json
import pstats
import sysconfig
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench import layers

SITE = "/work/x/.venv/lib/python3.11/site-packages"
STDLIB = sysconfig.get_paths()["stdlib"]


@pytest.mark.parametrize(
    ("filename", "funcname", "layer"),
    [
        (f"{SITE}/flask/app.py", "wsgi_app", "framework"),
        (f"{SITE}/werkzeug/routing/map.py", "match", "framework"),
        (f"{SITE}/flask_smorest/arguments.py", "wrapper", "framework"),
        (f"{SITE}/webargs/core.py", "parse", "framework"),
        (f"{SITE}/marshmallow/schema.py", "load", "schemas"),
        (f"{SITE}/sqlalchemy/orm/session.py", "execute", "ORM"),
        (f"{SITE}/psycopg/cursor.py", "execute", "driver"),
        (f"{SITE}/cryptography/fernet.py", "decrypt", "crypto"),
        (f"{SITE}/nacl/signing.py", "verify", "crypto"),
        (f"{SITE}/redis/client.py", "execute_command", "Redis"),
        (f"{SITE}/prometheus_client/metrics.py", "inc", "other"),
        (str(layers.ROOT / "yibao" / "api.py"), "authenticate", "ours"),
        (str(layers.ROOT / "voucher" / "verification.py"), "verify", "ours"),
        (str(layers.ROOT / "payments" / "settlement.py"), "pay", "ours"),
        (str(layers.ROOT / "family_accounts" / "payers.py"), "f", "ours"),
        (str(layers.ROOT / "supervision" / "checks.py"), "check_order", "ours"),
        (str(layers.ROOT / "benefits" / "split.py"), "compute", "ours"),
        (str(layers.ROOT / "bench" / "profile.py"), "run", "harness"),
        (f"{STDLIB}/hmac.py", "new", "crypto"),
        (f"{STDLIB}/hashlib.py", "__hash_new", "crypto"),
        (f"{STDLIB}/sqlite3/dbapi2.py", "f", "driver"),
        ("~", "<method 'execute' of 'sqlite3.Cursor' objects>", "driver"),
        ("~", "<built-in method _hashlib.hmac_digest>", "crypto"),
        ("~", "<method 'execute' of 'psycopg_binary._psycopg.PGconn' objects>", "driver"),
        # helpers without a layer of their own: their callers' (None here)
        (f"{STDLIB}/json/encoder.py", "encode", None),
        (f"{STDLIB}/socket.py", "recv_into", None),
        ("~", "<built-in method builtins.isinstance>", None),
        ("~", "<method 'recv_into' of '_socket.socket' objects>", None),
    ],
)
def test_a_function_goes_to_the_layer_of_its_package(filename: str, funcname: str, layer: str | None) -> None:
    assert layers.layer_of_package(layers.package_of(filename, funcname)) == layer


def _fake(stats: dict) -> pstats.Stats:
    return SimpleNamespace(stats=stats)  # type: ignore[return-value]


def test_helper_time_is_passed_up_to_its_callers_in_proportion() -> None:
    orm = (f"{SITE}/sqlalchemy/engine/base.py", 1, "execute")
    redis = (f"{SITE}/redis/connection.py", 1, "read_response")
    ours = (str(layers.ROOT / "voucher" / "x.py"), 1, "view")
    enc = (f"{STDLIB}/json/encoder.py", 1, "encode")
    recv = ("~", 0, "<method 'recv_into' of '_socket.socket' objects>")
    stats = {
        # (cc, nc, tottime, cumtime, callers {caller: (cc, nc, tt, ct)})
        ours: (1, 1, 0.010, 0.100, {}),
        orm: (1, 1, 0.020, 0.050, {ours: (1, 1, 0.020, 0.050)}),
        redis: (1, 1, 0.005, 0.030, {ours: (1, 1, 0.005, 0.030)}),
        # json encode: 3 ms called from the ORM, 1 ms from our view
        enc: (2, 2, 0.004, 0.004, {orm: (1, 1, 0.003, 0.003), ours: (1, 1, 0.001, 0.001)}),
        # the socket read: called only by redis-py, via nothing else
        recv: (1, 1, 0.025, 0.025, {redis: (1, 1, 0.025, 0.025)}),
    }
    out = layers.split(_fake(stats))
    assert out["ours"] == pytest.approx(0.010 + 0.001)
    assert out["ORM"] == pytest.approx(0.020 + 0.003)
    assert out["Redis"] == pytest.approx(0.005 + 0.025)
    assert out["other"] == pytest.approx(0.0)
    assert sum(out.values()) == pytest.approx(sum(s[2] for s in stats.values()))


def test_a_helper_no_layered_function_called_is_other_and_recursion_ends() -> None:
    a = (f"{STDLIB}/json/encoder.py", 1, "a")
    b = (f"{STDLIB}/json/decoder.py", 1, "b")
    stats = {
        a: (1, 1, 0.002, 0.003, {b: (1, 1, 0.002, 0.002)}),
        b: (1, 1, 0.001, 0.003, {a: (1, 1, 0.001, 0.001)}),
    }
    out = layers.split(_fake(stats))
    assert out["other"] == pytest.approx(0.003)


def test_a_real_profile_gives_hmac_to_crypto_and_json_to_its_caller() -> None:
    """cProfile of a loop in this test (tests/ has no layer: other) calling HMAC and json."""
    prof = cProfile.Profile(time.process_time)
    prof.enable()
    for i in range(2000):
        hmac.new(b"k" * 32, json.dumps({"i": i}).encode(), "sha256").hexdigest()
    prof.disable()
    out = layers.split(pstats.Stats(prof, stream=io.StringIO()))
    assert out["crypto"] > 0
    assert out["framework"] == out["ORM"] == out["Redis"] == 0
    # json's time went to this module's loop (package "tests": a package without a layer -> other)
    assert layers.package_of(__file__) == "tests"
    assert out["other"] > 0
    assert sum(out.values()) > 0


def test_the_stdlib_and_repository_paths_resolve() -> None:
    assert layers.package_of(str(Path(json.__file__))) == "json"
    assert layers.package_of(str(Path(layers.__file__))) == "bench"
