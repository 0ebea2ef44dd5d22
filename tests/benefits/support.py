"""A sample policy (the Yiyang/Dali-like figures of the demo seed) and helpers for the split tests."""

from __future__ import annotations

import copy
from typing import Any

POLICY_DOC: dict[str, Any] = {
    "class_b_self_pay_pct": 10,
    "outpatient": {
        "deductible_fen": {"primary": 0, "secondary": 5000, "tertiary": 5000},
        "ratio_pct": {"primary": 70, "secondary": 60, "tertiary": 50},
        "retired_extra_pct": 10,
        "annual_cap_fen": 300000,
    },
    "inpatient": {
        "deductible_fen": {"primary": 20000, "secondary": 60000, "tertiary": 100000},
        "ratio_pct": {"primary": 90, "secondary": 85, "tertiary": 80},
        "retired_extra_pct": 5,
        "annual_cap_fen": 20000000,
    },
    "serious_illness": {"threshold_fen": 2000000, "ratio_pct": 60, "annual_cap_fen": 40000000},
    "assistance": {"dibao": {"ratio_pct": 70, "annual_cap_fen": 1000000}},
}


def policy_doc(**changes: Any) -> dict[str, Any]:
    """A deep copy of POLICY_DOC with dotted-path changes: policy_doc(**{"outpatient.annual_cap_fen": 1})."""
    doc = copy.deepcopy(POLICY_DOC)
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = doc
        for p in parents:
            node = node[p]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return doc


DELETE = object()
