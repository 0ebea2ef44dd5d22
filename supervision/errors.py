"""Error codes of supervision (registered once, at import)."""

from __future__ import annotations

from yibao.errors import register_messages

MESSAGES = {
    # The problem carries `violations: [{rule_id, kind, evidence}]` (see checks.SupervisionBlocked).
    "SUPERVISION_BLOCKED": (
        422,
        "A fund-supervision rule refuses this: see violations.",
        "违反医保基金监管规则，已拦截：见 violations。",
    ),
    "SUPERVISION_RULE_NOT_FOUND": (404, "No such supervision rule.", "监管规则不存在。"),
}

register_messages(MESSAGES)
