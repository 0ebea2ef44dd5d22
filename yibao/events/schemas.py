"""Schemas of the events endpoint."""

from __future__ import annotations

from marshmallow import fields, validate

from yibao.api import Schema

from .stream import CURSOR_RE

WAIT_MAX = 25


class EventsQuery(Schema):
    after = fields.String(
        load_default=None,
        validate=validate.Regexp(CURSOR_RE),
        metadata={
            "description": "The `next` of the previous answer (a stream id such as 1700000000000-0). "
            "Omitted: only events published from now on."
        },
    )
    wait = fields.Integer(
        load_default=WAIT_MAX,
        validate=validate.Range(0, WAIT_MAX),
        metadata={
            "description": "Seconds to hold the request open when nothing is there yet (0: answer at once)."
        },
    )


class LiveEventSchema(Schema):
    id = fields.String(metadata={"description": "Stream id: pass the last one as `after`."})
    kind = fields.String(metadata={"description": "scan | payment"})
    at = fields.Float(metadata={"description": "Unix time (seconds) the event was published"})
    data = fields.Dict(
        metadata={
            "description": "scan: {at, institution, business_type, result, code, psn_no?}; payment: "
            "{pay_order_id, status, total_fen, account_pay_fen, mutual_aid_pay_fen, cash_pay_fen}"
        }
    )


class LiveEventsPageSchema(Schema):
    events = fields.List(fields.Nested(LiveEventSchema))
    next = fields.String(metadata={"description": "The cursor for the next request (`after`)."})
