"""One owner of the commit (payments/web.py): a view that commits on its own fails, its effects and
the stored idempotent answer commit together or not at all, one COMMIT per request."""

from __future__ import annotations

import secrets

import pytest
from marshmallow import fields
from sqlalchemy import event, func, select

from payments import idempotency
from payments.models import IdempotencyKey, WebhookEvent
from payments.web import idempotent, request_uow, write_uow
from tests.support import problem
from yibao.api import Blueprint, Schema, current_institution
from yibao.db import db, utcnow
from yibao.errors import AppError

probe = Blueprint("uow_probe", __name__, url_prefix="/api/v1/probe")


class ProbeOut(Schema):
    event_id = fields.String()


def _write(uow) -> dict:
    """An effect of the request: one outbox row."""
    now = utcnow()
    event_id = "msg_" + secrets.token_hex(8)
    uow.session.add(
        WebhookEvent(
            event_id=event_id,
            institution_id=current_institution().id,
            type="probe",
            payload="{}",
            state="pending",
            next_attempt_at=now,
            created_at=now,
        )
    )
    uow.session.flush()
    return {"event_id": event_id}


@probe.route("/writes", methods=["POST"])
@probe.institution
@idempotent()
@probe.response(201, ProbeOut)
def writes() -> dict:
    return _write(request_uow())


@probe.route("/commits", methods=["POST"])
@probe.institution
@idempotent()
@probe.response(201, ProbeOut)
def commits() -> dict:
    uow = request_uow()
    body = _write(uow)
    uow.commit()  # not the view's to do
    return body


@probe.route("/refuses", methods=["POST"])
@probe.institution
@idempotent()
@probe.response(201, ProbeOut)
def refuses() -> dict:
    _write(request_uow())
    raise AppError("ORDER_STATE_CONFLICT", order_status="paid")


@probe.route("/plain-commits", methods=["POST"])
@probe.institution
@probe.response(201, ProbeOut)
def plain_commits() -> dict:
    with write_uow() as uow:
        body = _write(uow)
        uow.commit()  # write_uow() commits when the block ends, nobody else
    return body


@probe.route("/plain-writes", methods=["POST"])
@probe.institution
@probe.response(201, ProbeOut)
def plain_writes() -> dict:
    with write_uow() as uow:
        return _write(uow)


@pytest.fixture
def probe_app(app):
    app.register_blueprint(probe)  # before the app's first request
    return app


def rows(app, model) -> int:
    with app.app_context(), db.uow(readonly=True) as uow:
        return uow.session.scalar(select(func.count()).select_from(model))


def post(yb, inst, path: str, key: str | None = None):
    headers = {"Idempotency-Key": key} if key else {}
    return yb.as_institution(inst, "POST", f"/probe{path}", headers=headers)


def test_a_view_that_commits_fails_and_writes_nothing(probe_app, yb, shop):
    r = post(yb, shop, "/commits", key="c-1")
    problem(r, 500, "INTERNAL_ERROR")
    assert rows(probe_app, WebhookEvent) == 0
    assert rows(probe_app, IdempotencyKey) == 0  # the claim is released: a retry runs again
    problem(post(yb, shop, "/commits", key="c-1"), 500, "INTERNAL_ERROR")


def test_a_refusal_writes_nothing_and_is_stored_for_replay(probe_app, yb, shop):
    first = post(yb, shop, "/refuses", key="r-1")
    problem(first, 409, "ORDER_STATE_CONFLICT")
    assert rows(probe_app, WebhookEvent) == 0
    again = post(yb, shop, "/refuses", key="r-1")
    problem(again, 409, "ORDER_STATE_CONFLICT")
    assert again.headers["Idempotent-Replayed"] == "true"
    assert rows(probe_app, WebhookEvent) == 0


@pytest.mark.parametrize("near_boundary", [False, True], ids=["mid-month", "month-boundary"])
def test_effects_and_stored_answer_commit_once_together(probe_app, yb, shop, monkeypatch, near_boundary):
    # Near a month boundary the claim is its own locking transaction (payments/idempotency.py): one
    # more COMMIT, before the request's; mid-month the claim is one self-committing INSERT.
    monkeypatch.setattr(idempotency, "near_month_boundary", lambda _now: near_boundary)
    engine = probe_app.extensions["yibao.db"]["engine"]
    commits: list[int] = []

    def count(_conn) -> None:
        commits.append(1)

    event.listen(engine, "commit", count)
    try:
        r = post(yb, shop, "/writes", key="w-1")
    finally:
        event.remove(engine, "commit", count)
    assert r.status_code == 201, r.get_json()
    # The claim committed itself (autocommit) or in its locking transaction; the rest is one transaction.
    assert len(commits) == (2 if near_boundary else 1)
    with probe_app.app_context(), db.uow(readonly=True) as uow:
        stored = uow.session.scalar(select(IdempotencyKey).where(IdempotencyKey.key == "w-1"))
    assert (stored.state, stored.response_status) == ("done", 201)
    assert stored.response_body == r.get_data(as_text=True)  # the serialized answer, byte for byte
    replay = post(yb, shop, "/writes", key="w-1")
    assert replay.get_data() == r.get_data() and replay.headers["Idempotent-Replayed"] == "true"
    assert rows(probe_app, WebhookEvent) == 1


def test_write_uow_commits_once_and_refuses_a_commit_from_the_view(probe_app, yb, shop):
    problem(post(yb, shop, "/plain-commits"), 500, "INTERNAL_ERROR")
    assert rows(probe_app, WebhookEvent) == 0
    assert post(yb, shop, "/plain-writes").status_code == 201
    assert rows(probe_app, WebhookEvent) == 1
