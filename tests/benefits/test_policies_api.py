"""PUT/GET /api/v1/admin/benefit-policies/{region}/{insurance_type}/{year}, lookup, `benefits load`."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from benefits import policies
from benefits.models import BenefitPolicy
from tests.support import problem
from yibao.db import db

from .support import DELETE, POLICY_DOC, policy_doc

PATH = "/benefit-policies/532900/employee/2026"


def count(app) -> int:
    with app.app_context(), db.uow(readonly=True) as uow:
        return uow.session.scalar(select(func.count()).select_from(BenefitPolicy))


def test_put_then_get_versions(yb, app):
    problem(yb.admin("GET", PATH), 404, "BENEFIT_POLICY_NOT_FOUND")
    r = yb.admin("PUT", PATH, POLICY_DOC)
    assert r.status_code == 200, r.get_json()
    got = r.get_json()
    assert got["version"] == 1 and got["policy"] == POLICY_DOC and got["region"] == "532900"
    assert got["insurance_type"] == "employee" and got["year"] == 2026
    changed = policy_doc(class_b_self_pay_pct=20)
    assert yb.admin("PUT", PATH, changed).get_json()["version"] == 2
    cur = yb.admin("GET", PATH).get_json()
    assert cur["version"] == 2 and cur["policy"]["class_b_self_pay_pct"] == 20
    assert count(app) == 2  # the old version stays
    problem(yb.admin("GET", "/benefit-policies/532900/resident/2026"), 404, "BENEFIT_POLICY_NOT_FOUND")
    problem(yb.admin("GET", "/benefit-policies/532900/employee/2027"), 404, "BENEFIT_POLICY_NOT_FOUND")


def test_assistance_categories_optional(yb):
    r = yb.admin("PUT", PATH, policy_doc(assistance={}))
    assert r.status_code == 200, r.get_json()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"outpatient.ratio_pct.tertiary": 101}, "outpatient"),
        ({"inpatient.deductible_fen.secondary": DELETE}, "inpatient"),
        ({"outpatient.ratio_pct.primary": -1}, "outpatient"),
        ({"serious_illness.threshold_fen": -5}, "serious_illness"),
        ({"class_b_self_pay_pct": 101}, "class_b_self_pay_pct"),
        ({"class_b_self_pay_pct": DELETE}, "class_b_self_pay_pct"),
        ({"class_b_self_pay_pct": 10.5}, "class_b_self_pay_pct"),
        ({"class_b_self_pay_pct": "10"}, "class_b_self_pay_pct"),
        ({"assistance": DELETE}, "assistance"),
        ({"assistance.dibao.ratio_pct": 150}, "assistance"),
        ({"assistance.rich": {"ratio_pct": 1, "annual_cap_fen": 1}}, "assistance"),
        ({"outpatient.annual_cap_fen": 2**53}, "outpatient"),
        ({"outpatient.deductible_fen.quaternary": 1}, "outpatient"),
        ({"inpatient": DELETE}, "inpatient"),
        ({"extra": 1}, "extra"),
    ],
)
def test_put_bad_policy(yb, app, changes, field):
    err = problem(yb.admin("PUT", PATH, policy_doc(**changes)), 422, "VALIDATION_FAILED")
    assert field in err["errors"], err
    assert count(app) == 0


@pytest.mark.parametrize(
    "path",
    [
        "/benefit-policies/999999/employee/2026",
        "/benefit-policies/5329/employee/2026",
        "/benefit-policies/532900/retired/2026",
        "/benefit-policies/532900/employee/26",
        "/benefit-policies/532900/employee/1999",
        "/benefit-policies/532900/employee/２０２６",
    ],
)
def test_bad_path(yb, app, path):
    problem(yb.admin("PUT", path, POLICY_DOC), 422, "VALIDATION_FAILED")
    problem(yb.admin("GET", path), 422, "VALIDATION_FAILED")
    assert count(app) == 0


def test_needs_operator(client):
    assert client.put(f"/api/v1/admin{PATH}", json=POLICY_DOC).status_code == 401
    assert client.get(f"/api/v1/admin{PATH}").status_code == 401


def test_nearest_ancestor(yb, app):
    assert yb.admin("PUT", "/benefit-policies/530000/resident/2026", POLICY_DOC).status_code == 200
    with app.app_context(), db.uow(readonly=True) as uow:
        found = policies.applicable(uow, insured_region="532901", insurance_type="resident", year=2026)
        assert found.row.region == "530000"
    yb.admin("PUT", "/benefit-policies/532900/resident/2026", policy_doc(class_b_self_pay_pct=5))
    yb.admin("PUT", "/benefit-policies/532900/resident/2026", policy_doc(class_b_self_pay_pct=7))
    with app.app_context(), db.uow(readonly=True) as uow:
        found = policies.applicable(uow, insured_region="532901", insurance_type="resident", year=2026)
        assert found.row.region == "532900" and found.policy.version == 2
        assert found.policy.class_b_self_pay_pct == 7
        # the county's own policy wins over its prefecture's
        assert policies.applicable(uow, insured_region="532900", insurance_type="resident", year=2026)
    yb.admin("PUT", "/benefit-policies/532901/resident/2026", policy_doc(class_b_self_pay_pct=3))
    with app.app_context(), db.uow(readonly=True) as uow:
        found = policies.applicable(uow, insured_region="532901", insurance_type="resident", year=2026)
        assert found.row.region == "532901"
        from yibao.errors import AppError

        with pytest.raises(AppError) as exc:
            policies.applicable(uow, insured_region="110105", insurance_type="resident", year=2026)
        assert exc.value.code == "BENEFIT_POLICY_MISSING"
        with pytest.raises(AppError):
            policies.applicable(uow, insured_region="532901", insurance_type="employee", year=2026)


def test_cli_load(app, tmp_path):
    runner = app.test_cli_runner()
    f = tmp_path / "p.json"
    f.write_text(
        json.dumps(
            [
                {"region": "532900", "insurance_type": "employee", "year": 2026, "policy": POLICY_DOC},
                {"region": "532900", "insurance_type": "resident", "year": 2026, "policy": POLICY_DOC},
            ]
        )
    )
    result = runner.invoke(args=["benefits", "load", str(f)])
    assert result.exit_code == 0, result.output
    assert [e["version"] for e in json.loads(result.output)] == [1, 1]
    assert count(app) == 2


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        json.dumps({"region": "532900", "insurance_type": "employee", "year": 2026}),
        json.dumps({"region": "000000", "insurance_type": "employee", "year": 2026, "policy": POLICY_DOC}),
        json.dumps(
            [
                {"region": "532900", "insurance_type": "employee", "year": 2026, "policy": POLICY_DOC},
                {
                    "region": "532900",
                    "insurance_type": "employee",
                    "year": 2026,
                    "policy": policy_doc(**{"outpatient.ratio_pct.primary": 101}),
                },
            ]
        ),
    ],
)
def test_cli_load_bad_file_writes_nothing(app, tmp_path, content):
    f = tmp_path / "p.json"
    f.write_text(content)
    result = app.test_cli_runner().invoke(args=["benefits", "load", str(f)])
    assert result.exit_code != 0
    assert count(app) == 0


def test_cli_names_the_field(app, tmp_path):
    f = tmp_path / "p.json"
    doc = policy_doc(**{"inpatient.ratio_pct.secondary": 101})
    f.write_text(json.dumps({"region": "532900", "insurance_type": "employee", "year": 2026, "policy": doc}))
    result = app.test_cli_runner().invoke(args=["benefits", "load", str(f)])
    assert result.exit_code != 0 and "inpatient.ratio_pct.secondary" in result.output


def test_seeded_demo_policies(app, tmp_path):
    from yibao.seed import seed_policies

    with app.app_context(), db.uow() as uow:
        seed_policies(uow, [2026])
        seed_policies(uow, [2026])  # idempotent
        uow.commit()
    assert count(app) == 4
    with app.app_context(), db.uow(readonly=True) as uow:
        for itype in ("employee", "resident"):
            found = policies.applicable(uow, insured_region="532901", insurance_type=itype, year=2026)
            assert found.row.region == "532900"
            assert found.policy.outpatient.deductible_fen["primary"] == 0
            assert found.policy.outpatient.deductible_fen["secondary"] == 5000
