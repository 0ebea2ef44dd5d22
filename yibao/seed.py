"""Demo data: persons, institutions and their credentials, created once and shown on every start."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from yibao.china_time import china_date
from yibao.db import UnitOfWork, utcnow
from yibao.registry import services as registry
from yibao.registry.models import Institution
from yibao.registry.validators import id_check_digit


def _id(first17: str) -> str:
    return first17 + id_check_digit(first17)


DEMO_PERSONS = [
    {
        "key": "employee",
        "name": "张三",
        "id_number": _id("53290119800101003"),
        "insurance_type": "employee",
        "insured_region": "532900",
        "personal_account_balance_fen": 50000,
    },
    {
        "key": "resident",
        "name": "李四",
        "id_number": _id("53290119900202002"),
        "insurance_type": "resident",
        "insured_region": "532900",
    },
    {
        "key": "mother",
        "name": "王秀英",
        "id_number": _id("11010519550303002"),
        "insurance_type": "employee",
        "insured_region": "110000",
        "personal_account_balance_fen": 2000,
    },
    {
        "key": "child",
        "name": "张小明",
        "id_number": _id("53290120180404001"),
        "insurance_type": "resident",
        "insured_region": "532900",
    },
]
DEMO_INSTITUTIONS = [
    {
        "key": "pharmacy",
        "name": "大理康民大药房",
        "kind": "pharmacy",
        "region": "532900",
        "services": ["02121", "01302", "03131"],
    },
    {
        "key": "hospital",
        "name": "大理州人民医院",
        "kind": "hospital",
        "region": "532900",
        "services": ["01101", "01201", "01301", "01302"],
        "level": "tertiary",
    },
    {
        "key": "online_pharmacy",
        "name": "京东大药房（北京）",
        "kind": "online_pharmacy",
        "region": "110000",
        "services": ["online_otc", "03131"],
    },
]


def _med(
    deductible: tuple[int, int, int], ratio: tuple[int, int, int], extra: int, cap: int
) -> dict[str, Any]:
    levels = ("primary", "secondary", "tertiary")
    return {
        "deductible_fen": dict(zip(levels, deductible, strict=True)),
        "ratio_pct": dict(zip(levels, ratio, strict=True)),
        "retired_extra_pct": extra,
        "annual_cap_fen": cap,
    }


# Demo benefit policies (issue 15). Figures from the bureaus' public reports where they give one:
# - outpatient deductible 50 yuan (5000 fen) at county-level (secondary) and higher, none at primary (Yiyang);
# - Dali's in-range inpatient reimbursement of 89.82 % (employees) and 70.49 % (residents) is an OUTCOME
#   (after deductibles and caps); the ratios below are ASSUMPTIONS chosen to land near it.
# Every other figure is an assumption for the demo, not a real region's policy: class B self-pay 10 %,
# retired +10 points outpatient / +5 inpatient, outpatient caps 3 000 / 2 000 yuan, inpatient caps
# 300 000 / 200 000 yuan, inpatient deductibles 200 / 600 / 1 000 yuan (employees) and 200 / 500 / 800
# (residents), serious illness above 20 000 yuan of cumulative shares at 60 % up to 400 000 yuan,
# assistance (dibao 70 %, tekun 100 %, low income 50 %, yearly caps 10 000 / 20 000 / 5 000 yuan).
ASSISTANCE_DEMO = {
    "dibao": {"ratio_pct": 70, "annual_cap_fen": 1000000},
    "tekun": {"ratio_pct": 100, "annual_cap_fen": 2000000},
    "low_income": {"ratio_pct": 50, "annual_cap_fen": 500000},
}
SERIOUS_ILLNESS_DEMO = {"threshold_fen": 2000000, "ratio_pct": 60, "annual_cap_fen": 40000000}
DEMO_POLICIES: dict[str, dict[str, Any]] = {
    "employee": {
        "class_b_self_pay_pct": 10,
        "outpatient": _med((0, 5000, 5000), (80, 70, 60), 10, 300000),
        "inpatient": _med((20000, 60000, 100000), (95, 92, 88), 5, 30000000),
        "serious_illness": SERIOUS_ILLNESS_DEMO,
        "assistance": ASSISTANCE_DEMO,
    },
    "resident": {
        "class_b_self_pay_pct": 10,
        "outpatient": _med((0, 5000, 5000), (60, 55, 50), 0, 200000),
        "inpatient": _med((20000, 50000, 80000), (85, 75, 65), 0, 20000000),
        "serious_illness": SERIOUS_ILLNESS_DEMO,
        "assistance": ASSISTANCE_DEMO,
    },
}
# The demo regions: Dali prefecture (532900, its counties find it as their nearest ancestor) and Beijing.
DEMO_POLICY_REGIONS = ("532900", "110000")


def seed_policies(uow: UnitOfWork, years: list[int]) -> None:
    """Demo benefit policies for the demo regions, for each of `years`, unless one exists already."""
    from benefits import policies  # a domain package: imported only when seeding

    for region in DEMO_POLICY_REGIONS:
        for insurance_type, document in DEMO_POLICIES.items():
            for year in years:
                key = {"region": region, "insurance_type": insurance_type, "year": year}
                if policies.current_row(uow, **key) is None:
                    policies.put_policy(uow, document=document, **key)


def seed_demo(uow: UnitOfWork, credentials_file: Path) -> dict[str, Any]:
    """Create the demo data unless it exists; return what a developer needs to try the API."""
    year = china_date(utcnow()).year
    seed_policies(uow, [year, year + 1])
    if credentials_file.exists():
        saved = json.loads(credentials_file.read_text())
        if all(registry.institution_by_org_id(uow, i["org_id"]) for i in saved["institutions"].values()):
            uow.commit()
            return saved
    out: dict[str, Any] = {"persons": {}, "institutions": {}}
    for spec in DEMO_PERSONS:
        data = {k: v for k, v in spec.items() if k != "key"}
        person = registry.person_by_id_number(uow, data["id_number"]) or registry.create_person(uow, **data)
        out["persons"][spec["key"]] = {
            "psn_no": person.psn_no,
            "name": data["name"],
            "id_number": data["id_number"],
            "insurance_type": data["insurance_type"],
        }
    for spec in DEMO_INSTITUTIONS:
        data = {k: v for k, v in spec.items() if k != "key"}
        existing = uow.session.scalar(
            select(Institution).where(Institution.name == data["name"], Institution.kind == data["kind"])
        )
        if existing is not None:  # credentials file lost: new secret for the same institution
            creds = registry.rotate_institution_secret(uow, existing.org_id)
        else:
            _, creds = registry.create_institution(uow, **data)
        out["institutions"][spec["key"]] = {"name": data["name"], **vars(creds)}
    uow.commit()
    credentials_file.parent.mkdir(parents=True, exist_ok=True)
    credentials_file.write_text(json.dumps(out, ensure_ascii=False, indent=2))
    credentials_file.chmod(0o600)
    return out


# ---------------------------------------------------------------- the banner of `make run` (development only)

# Which demo person goes with which institution, and why (what `make run` prints under the credentials).
DEMO_GUIDE = [
    (
        "employee",
        "pharmacy",
        "02121",
        "employee insurance has a personal account: a counter sale is paid from it",
    ),
    (
        "resident",
        "hospital",
        "01101",
        "resident insurance has no personal account: registration and outpatient",
    ),
    (
        "child",
        "hospital",
        "01301",
        "a child: a guardian (e.g. 张三) binds him with a guardian proof, shows his code",
    ),
    ("mother", "online_pharmacy", "online_otc", "insured in Beijing like the online pharmacy; 20 yuan left"),
]


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def guide_lines(demo: dict[str, Any]) -> list[str]:
    """Who to use where, with the opening balances of the personal accounts (from DEMO_PERSONS)."""
    specs = {p["key"]: p for p in DEMO_PERSONS}
    lines = ["Who goes where (person -> institution, business type: why):"]
    for person_key, inst_key, business, why in DEMO_GUIDE:
        spec, person = specs[person_key], demo["persons"][person_key]
        inst = demo["institutions"][inst_key]
        balance = spec.get("personal_account_balance_fen")
        money = f"opening balance {_yuan(balance)} yuan" if balance is not None else "no personal account"
        kind = spec["insurance_type"]
        lines.append(f"  {person['name']} ({person_key}: {kind} insurance, {money}, {person['psn_no']})")
        lines.append(f"      -> {inst['name']} ({inst_key}), {business}: {why}")
    return lines


def demo_employee_session(
    uow: UnitOfWork, demo: dict[str, Any], provider: Any, redis_client: Any, config: Any
) -> dict[str, Any]:
    """Activate the demo employee through the sandbox identity provider (development only) and return
    {access_token, refresh_token, expires_in}: a ready token for the banner. The caller commits."""
    from yibao.identity import services as identity

    person = next(p for p in DEMO_PERSONS if p["key"] == "employee")
    proof = provider.issue(id_number=person["id_number"], name=person["name"])
    _, pair = identity.activate(
        uow,
        provider,
        redis_client,
        id_number=person["id_number"],
        name=person["name"],
        identity_proof=proof,
        device_id="make-run-banner",
        secret=config["SECRET_KEY"],
        access_ttl=config["ACCESS_TOKEN_TTL"],
        refresh_ttl=config["REFRESH_TOKEN_TTL"],
    )
    return vars(pair)
