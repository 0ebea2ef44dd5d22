"""Operator CLI for the registry additions of issue 15: person --retired / --assistance-category, the
person update command, institution --level. Bad values are refused, naming the field; nothing written."""

from __future__ import annotations

import json

import pytest

from tests.shell.test_cli import ok, run
from tests.support import make_id_number, make_name


def create_person(runner, *extra, insurance_type="employee"):
    return run(
        runner,
        "person",
        "create",
        "--name",
        make_name(),
        "--id-number",
        make_id_number(),
        "--insurance-type",
        insurance_type,
        "--region",
        "532900",
        *extra,
    )


def shown(yb, psn_no: str) -> dict:
    r = yb.admin("GET", f"/persons/{psn_no}")
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_person_create_retired_and_assistance(runner, yb):
    psn = ok(create_person(runner, "--retired", "--assistance-category", "dibao"))["psn_no"]
    got = shown(yb, psn)
    assert (got["retired"], got["assistance_category"]) == (True, "dibao")
    plain = ok(create_person(runner))["psn_no"]  # the defaults
    got = shown(yb, plain)
    assert (got["retired"], got["assistance_category"]) == (False, "none")
    resident = ok(create_person(runner, "--assistance-category", "tekun", insurance_type="resident"))
    assert shown(yb, resident["psn_no"])["assistance_category"] == "tekun"


@pytest.mark.parametrize(
    ("extra", "insurance_type", "says"),
    [
        (["--retired"], "resident", "Only employee insurance has retirees."),
        (["--assistance-category", "poor"], "employee", "'poor' is not one of"),
        (["--assistance-category", ""], "employee", "is not one of"),
        (["--retired", "yes"], "employee", "unexpected extra argument"),
    ],
)
def test_person_create_bad_values(runner, rows, extra, insurance_type, says):
    result = create_person(runner, *extra, insurance_type=insurance_type)
    assert result.exit_code == 2, result.output
    assert says in result.output
    assert rows()["persons"] == 0


def test_person_update(runner, yb):
    psn = ok(create_person(runner))["psn_no"]
    out = ok(run(runner, "person", "update", psn, "--retired", "--assistance-category", "low_income"))
    assert out == {"psn_no": psn, "status": "active", "retired": True, "assistance_category": "low_income"}
    got = shown(yb, psn)
    assert (got["retired"], got["assistance_category"]) == (True, "low_income")
    out = ok(run(runner, "person", "update", psn, "--not-retired", "--status", "suspended"))
    assert (out["retired"], out["status"], out["assistance_category"]) == (False, "suspended", "low_income")
    assert shown(yb, psn)["status"] == "suspended"


def test_person_update_bad_values_write_nothing(runner, yb, rows):
    employee = ok(create_person(runner))["psn_no"]
    resident = ok(create_person(runner, insurance_type="resident"))["psn_no"]
    before = (rows(), shown(yb, employee), shown(yb, resident))
    result = run(runner, "person", "update", resident, "--retired", "--assistance-category", "dibao")
    assert result.exit_code == 1, result.output
    assert "VALIDATION_FAILED" in result.output
    assert json.dumps({"retired": ["Only employee insurance has retirees."]}) in result.output
    for args, code, says in (
        ([employee], 2, "Give status, retired or assistance_category."),
        ([employee, "--assistance-category", "rich"], 2, "'rich' is not one of"),
        ([employee, "--status", "deleted"], 2, "'deleted' is not one of"),
        ([employee, "--retired", "maybe"], 2, "unexpected extra argument"),
        (["psn_nope", "--retired"], 1, "PERSON_NOT_FOUND"),
    ):
        result = run(runner, "person", "update", *args)
        assert result.exit_code == code, (args, result.output)
        assert says in result.output, (args, result.output)
    assert (rows(), shown(yb, employee), shown(yb, resident)) == before


def _institution(runner, *extra):
    return run(
        runner,
        "institution",
        "create",
        "--name",
        "县医院",
        "--kind",
        "hospital",
        "--region",
        "532901",
        "--service",
        "01301",
        *extra,
    )


def test_institution_level(runner, yb, rows):
    tertiary = ok(_institution(runner, "--level", "tertiary"))["org_id"]
    assert yb.admin("GET", f"/institutions/{tertiary}").get_json()["level"] == "tertiary"
    default = ok(_institution(runner))["org_id"]
    assert yb.admin("GET", f"/institutions/{default}").get_json()["level"] == "secondary"
    before = rows()
    for bad in ("quaternary", "Tertiary", ""):
        result = _institution(runner, "--level", bad)
        assert result.exit_code == 2, result.output
        assert "is not one of 'primary', 'secondary', 'tertiary'" in result.output
    assert rows() == before
