"""What GET /accounts/me/benefits shows: the year's running totals and what is left of each cap."""

from __future__ import annotations

from typing import Any

from yibao.db import UnitOfWork
from yibao.errors import AppError
from yibao.registry.models import Person

from . import policies, totals


def _cap(cap: int, paid: int) -> dict[str, int]:
    return {"cap_fen": cap, "paid_fen": paid, "left_fen": max(0, cap - paid)}


def benefits_of(uow: UnitOfWork, person: Person, year: int) -> dict[str, Any]:
    """The totals of `person` in `year` (zeros before any settlement) and the caps of the policy."""
    row = totals.read(uow, person.id, year)
    t = totals.as_totals(row)
    out: dict[str, Any] = {
        "psn_no": person.psn_no,
        "year": year,
        **{f: getattr(t, f) for f in ("hifp_outpatient_fen", "hifp_inpatient_fen", "hifmi_fen", "maf_fen")},
        "inpatient_share_fen": t.inpatient_share_fen,
        "deductible_outpatient_fen": row.deductible_outpatient_fen if row else 0,
        "deductible_inpatient_fen": row.deductible_inpatient_fen if row else 0,
        "settlements": row.settlements if row else 0,
        "policy_region": None,
        "policy_version": None,
        "caps": {},
    }
    try:
        found = policies.applicable(
            uow, insured_region=person.insured_region, insurance_type=person.insurance_type, year=year
        )
    except AppError:
        return out
    p = found.policy
    out["policy_region"], out["policy_version"] = found.row.region, found.row.version
    caps = {
        "hifp_outpatient": _cap(p.outpatient.annual_cap_fen, t.hifp_outpatient_fen),
        "hifp_inpatient": _cap(p.inpatient.annual_cap_fen, t.hifp_inpatient_fen),
        "hifmi": _cap(p.serious_illness.annual_cap_fen, t.hifmi_fen),
    }
    aid = p.assistance.get(person.assistance_category)
    if aid is not None:
        caps["maf"] = _cap(aid.annual_cap_fen, t.maf_fen)
    out["caps"] = caps
    return out
