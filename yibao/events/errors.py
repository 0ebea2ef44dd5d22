"""Error codes of the push channel."""

from __future__ import annotations

from yibao.errors import register_messages

register_messages(
    {
        "EVENTS_UNAVAILABLE": (
            503,
            "Live updates are unavailable right now; try again shortly.",
            "实时消息暂不可用，请稍后重试。",
        ),
    }
)
