"""Operator CLI: persons, filings, institutions, secret rotation, demo seed, migrations."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, inspect

from tests.support import make_id_number, make_name


def run(runner, *args):
    return runner.invoke(args=[str(a) for a in args])


def ok(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_person_create_status_and_filing(runner, yb, rows):
    id_number, name = make_id_number(), make_name()
    out = ok(
        run(
            runner,
            "person",
            "create",
            "--name",
            name,
            "--id-number",
            id_number,
            "--insurance-type",
            "employee",
            "--region",
            "532900",
            "--balance-fen",
            1000,
        )
    )
    psn_no = out["psn_no"]
    assert id_number not in json.dumps(out)
    shown = yb.admin("GET", f"/persons/{psn_no}").get_json()
    assert shown["status"] == "active" and shown["has_personal_account"]
    assert ok(run(runner, "person", "set-status", psn_no, "suspended")) == {
        "psn_no": psn_no,
        "status": "suspended",
    }
    assert yb.admin("GET", f"/persons/{psn_no}").get_json()["status"] == "suspended"
    out = ok(run(runner, "person", "add-filing", psn_no, "--region", "110105", "--valid-until", "2030-01-01"))
    assert out["filing_no"].startswith("crf_")
    assert rows()["cross_region_filings"] == 1


@pytest.mark.parametrize(
    "args",
    [
        [
            "--id-number",
            "532901198001010010",
            "--insurance-type",
            "employee",
            "--region",
            "532900",
        ],  # no name
        [
            "--name",
            "张三",
            "--id-number",
            "532901198001010011",
            "--insurance-type",
            "employee",
            "--region",
            "532900",
        ],
        [
            "--name",
            "张三",
            "--id-number",
            "5329011980010100",
            "--insurance-type",
            "employee",
            "--region",
            "532900",
        ],
        ["--name", "张三", "--id-number", make_id_number(), "--insurance-type", "gold", "--region", "532900"],
        [
            "--name",
            "张三",
            "--id-number",
            make_id_number(),
            "--insurance-type",
            "employee",
            "--region",
            "999999",
        ],
        [
            "--name",
            "张三",
            "--id-number",
            make_id_number(),
            "--insurance-type",
            "resident",
            "--region",
            "532900",
            "--balance-fen",
            "100",
        ],
        [
            "--name",
            "张三",
            "--id-number",
            make_id_number(),
            "--insurance-type",
            "employee",
            "--region",
            "532900",
            "--balance-fen",
            "lots",
        ],
        [
            "--name",
            "张三",
            "--id-number",
            make_id_number(),
            "--insurance-type",
            "employee",
            "--region",
            "532900",
            "--balance-fen",
            "-5",
        ],
    ],
)
def test_person_create_bad_input(runner, rows, args):
    result = run(runner, "person", "create", *args)
    assert result.exit_code == 2, result.output
    assert rows()["persons"] == 0


def test_person_create_duplicate(runner, rows):
    args = [
        "person",
        "create",
        "--name",
        "张三",
        "--id-number",
        make_id_number(),
        "--insurance-type",
        "resident",
        "--region",
        "532900",
    ]
    ok(run(runner, *args))
    result = run(runner, *args)
    assert result.exit_code == 1 and "PERSON_EXISTS" in result.output
    assert rows()["persons"] == 1


def test_person_status_and_filing_bad_input(runner, yb, rows):
    p = yb.person(region="532900", activate=False)
    before = rows()
    assert run(runner, "person", "set-status", "psn_nope", "suspended").exit_code == 1
    assert "PERSON_NOT_FOUND" in run(runner, "person", "set-status", "psn_nope", "suspended").output
    assert run(runner, "person", "set-status", p.psn_no, "deleted").exit_code == 2
    assert run(runner, "person", "add-filing", p.psn_no, "--region", "999999").exit_code == 2
    assert (
        run(
            runner, "person", "add-filing", p.psn_no, "--region", "110105", "--valid-from", "yesterday"
        ).exit_code
        == 2
    )
    assert run(runner, "person", "add-filing", p.psn_no, "--region", "532900").exit_code == 1
    assert (
        run(
            runner,
            "person",
            "add-filing",
            p.psn_no,
            "--region",
            "110105",
            "--valid-from",
            "2026-05-01",
            "--valid-until",
            "2026-04-01",
        ).exit_code
        == 1
    )
    assert run(runner, "person", "add-filing", "psn_nope", "--region", "110105").exit_code == 1
    assert rows() == before
    assert yb.admin("GET", f"/persons/{p.psn_no}").get_json()["status"] == "active"


def test_institution_create_and_rotate(runner, yb, client):
    out = ok(
        run(
            runner,
            "institution",
            "create",
            "--name",
            "大理测试医院",
            "--kind",
            "hospital",
            "--region",
            "532901",
            "--service",
            "01101",
            "--service",
            "01301",
        )
    )
    assert set(out) == {"org_id", "key_id", "secret"}
    shown = yb.admin("GET", f"/institutions/{out['org_id']}").get_json()
    assert shown["services"] == ["01101", "01301"] and shown["kind"] == "hospital"
    rotated = ok(run(runner, "institution", "rotate-secret", out["org_id"]))
    assert rotated["org_id"] == out["org_id"] and rotated["secret"] != out["secret"]
    result = run(runner, "institution", "rotate-secret", "org_nope")
    assert result.exit_code == 1 and "INSTITUTION_NOT_FOUND" in result.output


def test_institution_update(runner, yb):
    inst = yb.institution(kind="pharmacy", services=["02121", "03131"])
    out = ok(run(runner, "institution", "update", inst.org_id, "--status", "disabled"))
    assert out == {"org_id": inst.org_id, "status": "disabled", "services": ["02121", "03131"]}
    out = ok(run(runner, "institution", "update", inst.org_id, "--status", "active", "--service", "03131"))
    assert out["status"] == "active" and out["services"] == ["03131"]
    for bad in (["--service", "online_otc"], ["--service", "99999"], [], ["--status", "closed"]):
        result = run(runner, "institution", "update", inst.org_id, *bad)
        assert result.exit_code != 0, (bad, result.output)
    assert yb.admin("GET", f"/institutions/{inst.org_id}").get_json()["services"] == ["03131"]
    result = run(runner, "institution", "update", "org_nope", "--status", "disabled")
    assert result.exit_code == 1 and "INSTITUTION_NOT_FOUND" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["--kind", "pharmacy", "--region", "532900", "--service", "02121"],  # no name
        ["--name", "x", "--kind", "clinic", "--region", "532900", "--service", "02121"],
        ["--name", "x", "--kind", "pharmacy", "--region", "000000", "--service", "02121"],
        ["--name", "x", "--kind", "pharmacy", "--region", "532900"],  # no service
        ["--name", "x", "--kind", "pharmacy", "--region", "532900", "--service", "99999"],
        ["--name", "x", "--kind", "pharmacy", "--region", "532900", "--service", "online_otc"],
        ["--name", " ", "--kind", "pharmacy", "--region", "532900", "--service", "02121"],
    ],
)
def test_institution_create_bad_input(runner, rows, args):
    result = run(runner, "institution", "create", *args)
    assert result.exit_code == 2, result.output
    assert rows()["institutions"] == 0


def test_seed_demo_idempotent(runner, rows, monkeypatch, tmp_path, yb):
    monkeypatch.setattr("yibao.config.INSTANCE_DIR", tmp_path)
    first = ok(run(runner, "seed-demo"))
    assert set(first["persons"]) >= {"employee", "resident"}
    assert set(first["institutions"]) == {"pharmacy", "hospital", "online_pharmacy"}
    counts = rows()
    assert counts["persons"] == len(first["persons"]) and counts["institutions"] == 3
    second = ok(run(runner, "seed-demo"))
    assert second == first and rows() == counts
    assert (tmp_path / "demo-credentials.json").stat().st_mode & 0o077 == 0
    # The demo employee has a personal account and the seeded credentials sign requests.
    emp = yb.admin("GET", f"/persons/{first['persons']['employee']['psn_no']}").get_json()
    assert emp["has_personal_account"]
    creds = first["institutions"]["pharmacy"]
    from tests.support import Institution

    inst = Institution(creds["org_id"], creds["key_id"], creds["secret"], "532900", "pharmacy")
    assert yb.as_institution(inst, "GET", "/institutions/me").status_code == 200
    # Lost credentials file: seeding again must not duplicate the persons.
    (tmp_path / "demo-credentials.json").unlink()
    third = ok(run(runner, "seed-demo"))
    assert rows() == counts
    assert third["institutions"]["pharmacy"]["org_id"] == creds["org_id"]
    assert third["institutions"]["pharmacy"]["secret"] != creds["secret"]


def test_db_upgrade_on_empty_database(make_app, tmp_path):
    url = f"sqlite:///{tmp_path}/fresh.sqlite3"
    fresh = make_app(DATABASE_URL=url)
    result = fresh.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output
    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {
        "persons",
        "institutions",
        "cross_region_filings",
        "auth_sessions",
        "refresh_tokens",
        "alembic_version",
    } <= tables
    again = fresh.test_cli_runner().invoke(args=["db", "upgrade"])
    assert again.exit_code == 0, again.output


def test_db_upgrade_on_migrated_database(runner):
    result = run(runner, "db", "upgrade")
    assert result.exit_code == 0, result.output


def test_db_upgrade_unreachable_database(make_app, tmp_path):
    for url in ("postgresql://yb:pw-secret@127.0.0.1:1/none", f"sqlite:///{tmp_path}/no/such/dir/x.sqlite3"):
        result = make_app(DATABASE_URL=url).test_cli_runner().invoke(args=["db", "upgrade"])
        assert result.exit_code == 1, result.output
        assert "DATABASE_UNAVAILABLE" in result.output and "pw-secret" not in result.output
        assert "Traceback" not in result.output


@pytest.mark.slow
def test_console_script(tmp_path, redis_url):
    """The installed `yibao` command works on a fresh database, as an operator would run it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("yibao")
    env = {
        **os.environ,
        "YIBAO_INSTANCE_DIR": str(tmp_path),
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"sqlite:///{tmp_path}/cli.sqlite3",
    }

    def yibao(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, timeout=120)

    up = yibao("db", "upgrade")
    assert up.returncode == 0, up.stderr
    created = yibao(
        "person",
        "create",
        "--name",
        "张三",
        "--id-number",
        make_id_number(),
        "--insurance-type",
        "resident",
        "--region",
        "532900",
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["psn_no"].startswith("psn_")
    bad = yibao(
        "person",
        "create",
        "--name",
        "张三",
        "--id-number",
        "123",
        "--insurance-type",
        "resident",
        "--region",
        "532900",
    )
    assert bad.returncode == 2 and "id_number" in bad.stderr
    seeded = yibao("seed-demo")
    assert seeded.returncode == 0, seeded.stderr
    assert json.loads(seeded.stdout)["institutions"]["pharmacy"]["secret"]
    assert (tmp_path / "demo-credentials.json").exists()
