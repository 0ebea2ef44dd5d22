"""Registry additions of issue 15: person `retired` and `assistance_category`, institution `level`."""

from __future__ import annotations

import pytest

from tests.support import make_id_number, make_name, problem


def person_body(**over):
    body = {
        "name": make_name(),
        "id_number": make_id_number(),
        "insurance_type": "employee",
        "insured_region": "532900",
    }
    body.update(over)
    return body


def test_person_defaults(yb):
    psn_no = yb.admin("POST", "/persons", person_body()).get_json()["psn_no"]
    got = yb.admin("GET", f"/persons/{psn_no}").get_json()
    assert got["retired"] is False and got["assistance_category"] == "none"


def test_person_created_retired_with_assistance(yb):
    resp = yb.admin("POST", "/persons", person_body(retired=True, assistance_category="tekun"))
    assert resp.status_code == 201, resp.get_json()
    got = yb.admin("GET", f"/persons/{resp.get_json()['psn_no']}").get_json()
    assert got["retired"] is True and got["assistance_category"] == "tekun"


def test_resident_with_assistance(yb):
    body = person_body(insurance_type="resident", assistance_category="dibao")
    psn_no = yb.admin("POST", "/persons", body).get_json()["psn_no"]
    assert yb.admin("GET", f"/persons/{psn_no}").get_json()["assistance_category"] == "dibao"


@pytest.mark.parametrize(
    "over",
    [
        {"insurance_type": "resident", "retired": True},
        {"retired": "maybe"},
        {"retired": None},
        {"assistance_category": "rich"},
        {"assistance_category": None},
        {"assistance_category": 1},
    ],
)
def test_person_bad_input(yb, rows, over):
    before = rows()
    err = problem(yb.admin("POST", "/persons", person_body(**over)), 422, "VALIDATION_FAILED")
    assert err["errors"]
    assert rows() == before


def test_patch_retired_and_category(yb):
    p = yb.person(activate=False)
    resp = yb.admin("PATCH", f"/persons/{p.psn_no}", {"retired": True, "assistance_category": "low_income"})
    assert resp.status_code == 200, resp.get_json()
    got = resp.get_json()
    assert got["retired"] is True and got["assistance_category"] == "low_income" and got["status"] == "active"
    resp = yb.admin("PATCH", f"/persons/{p.psn_no}", {"retired": False, "status": "suspended"})
    assert resp.get_json()["retired"] is False and resp.get_json()["status"] == "suspended"
    assert resp.get_json()["assistance_category"] == "low_income"


@pytest.mark.parametrize("body", [{"retired": 2}, {"assistance_category": "x"}, {"retired": None}])
def test_patch_bad_input(yb, body):
    p = yb.person(activate=False)
    problem(yb.admin("PATCH", f"/persons/{p.psn_no}", body), 422, "VALIDATION_FAILED")
    got = yb.admin("GET", f"/persons/{p.psn_no}").get_json()
    assert got["retired"] is False and got["assistance_category"] == "none"


def test_patch_retired_refused_for_resident(yb):
    p = yb.person(insurance_type="resident", activate=False)
    err = problem(yb.admin("PATCH", f"/persons/{p.psn_no}", {"retired": True}), 422, "VALIDATION_FAILED")
    assert "retired" in err["errors"]
    assert yb.admin("GET", f"/persons/{p.psn_no}").get_json()["retired"] is False


def test_institution_level(yb):
    inst = yb.institution(kind="hospital", level="tertiary")
    assert yb.admin("GET", f"/institutions/{inst.org_id}").get_json()["level"] == "tertiary"
    inst = yb.institution()
    assert yb.admin("GET", f"/institutions/{inst.org_id}").get_json()["level"] == "secondary"


@pytest.mark.parametrize("level", ["quaternary", None, 3, ""])
def test_institution_bad_level(yb, rows, level):
    before = rows()
    body = {"name": "大理医院", "kind": "hospital", "region": "532901", "services": ["01301"], "level": level}
    problem(yb.admin("POST", "/institutions", body), 422, "VALIDATION_FAILED")
    assert rows() == before
