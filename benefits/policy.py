"""The benefit policy document (DESIGN.md "Hospital settlement"): parsing and validation. Pure, no I/O.

{class_b_self_pay_pct,
 outpatient: {deductible_fen: {primary, secondary, tertiary}, ratio_pct: {...},
              retired_extra_pct, annual_cap_fen},
 inpatient: {same keys},
 serious_illness: {threshold_fen, ratio_pct, annual_cap_fen},
 assistance: {dibao|tekun|low_income: {ratio_pct, annual_cap_fen}}}

Every key is required except the categories under `assistance`; percentages are integers 0..100, amounts
integers >= 0 (at most 2^53 - 1). Unknown keys are refused too, so a typo never silently means "0".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

LEVELS = ("primary", "secondary", "tertiary")
ASSISTANCE_KEYS = ("dibao", "tekun", "low_income")
MAX_FEN = 2**53 - 1


class PolicyInvalid(ValueError):
    """The document breaks a rule; `field` is the dotted path of the first offending key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class MedTypePolicy:
    deductible_fen: Mapping[str, int]
    ratio_pct: Mapping[str, int]
    retired_extra_pct: int
    annual_cap_fen: int


@dataclass(frozen=True)
class SeriousIllness:
    threshold_fen: int
    ratio_pct: int
    annual_cap_fen: int


@dataclass(frozen=True)
class Assistance:
    ratio_pct: int
    annual_cap_fen: int


@dataclass(frozen=True)
class Policy:
    class_b_self_pay_pct: int
    outpatient: MedTypePolicy
    inpatient: MedTypePolicy
    serious_illness: SeriousIllness
    assistance: Mapping[str, Assistance]
    version: int = 0

    def med(self, med_type: str) -> MedTypePolicy:
        return self.outpatient if med_type == "outpatient" else self.inpatient


def _obj(doc: Any, path: str, keys: tuple[str, ...], *, optional: bool = False) -> Mapping[str, Any]:
    if not isinstance(doc, Mapping):
        raise PolicyInvalid(path or "body", "must be an object")
    for key in doc:
        if key not in keys:
            raise PolicyInvalid(f"{path}.{key}" if path else str(key), "unknown field")
    if not optional:
        for key in keys:
            if key not in doc:
                raise PolicyInvalid(f"{path}.{key}" if path else key, "missing")
    return doc


def _int(value: Any, path: str, *, pct: bool) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyInvalid(path, "must be an integer")
    if pct and not 0 <= value <= 100:
        raise PolicyInvalid(path, "must be between 0 and 100")
    if not pct and not 0 <= value <= MAX_FEN:
        raise PolicyInvalid(path, "must be >= 0 and at most 2^53 - 1")
    return value


def _levels(doc: Any, path: str, *, pct: bool) -> dict[str, int]:
    d = _obj(doc, path, LEVELS)
    return {lv: _int(d[lv], f"{path}.{lv}", pct=pct) for lv in LEVELS}


def _med(doc: Any, path: str) -> MedTypePolicy:
    d = _obj(doc, path, ("deductible_fen", "ratio_pct", "retired_extra_pct", "annual_cap_fen"))
    return MedTypePolicy(
        deductible_fen=_levels(d["deductible_fen"], f"{path}.deductible_fen", pct=False),
        ratio_pct=_levels(d["ratio_pct"], f"{path}.ratio_pct", pct=True),
        retired_extra_pct=_int(d["retired_extra_pct"], f"{path}.retired_extra_pct", pct=True),
        annual_cap_fen=_int(d["annual_cap_fen"], f"{path}.annual_cap_fen", pct=False),
    )


def parse(doc: Any, *, version: int = 0) -> Policy:
    """Validate a policy document. Raises PolicyInvalid naming the first bad field."""
    d = _obj(doc, "", ("class_b_self_pay_pct", "outpatient", "inpatient", "serious_illness", "assistance"))
    si = _obj(d["serious_illness"], "serious_illness", ("threshold_fen", "ratio_pct", "annual_cap_fen"))
    aid = _obj(d["assistance"], "assistance", ASSISTANCE_KEYS, optional=True)
    assistance = {}
    for key in ASSISTANCE_KEYS:
        if key in aid:
            a = _obj(aid[key], f"assistance.{key}", ("ratio_pct", "annual_cap_fen"))
            assistance[key] = Assistance(
                ratio_pct=_int(a["ratio_pct"], f"assistance.{key}.ratio_pct", pct=True),
                annual_cap_fen=_int(a["annual_cap_fen"], f"assistance.{key}.annual_cap_fen", pct=False),
            )
    return Policy(
        class_b_self_pay_pct=_int(d["class_b_self_pay_pct"], "class_b_self_pay_pct", pct=True),
        outpatient=_med(d["outpatient"], "outpatient"),
        inpatient=_med(d["inpatient"], "inpatient"),
        serious_illness=SeriousIllness(
            threshold_fen=_int(si["threshold_fen"], "serious_illness.threshold_fen", pct=False),
            ratio_pct=_int(si["ratio_pct"], "serious_illness.ratio_pct", pct=True),
            annual_cap_fen=_int(si["annual_cap_fen"], "serious_illness.annual_cap_fen", pct=False),
        ),
        assistance=assistance,
        version=version,
    )


def candidate_regions(code: str) -> list[str]:
    """The nearest-ancestor order: code, code[:4]+"00", code[:2]+"0000" (without repeats)."""
    out: list[str] = []
    for c in (code, code[:4] + "00", code[:2] + "0000"):
        if c not in out:
            out.append(c)
    return out
