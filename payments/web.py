"""Flask glue for payments: the @idempotent decorator and JSON responses that it can store and replay."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from yibao import errors
from yibao.api import current_institution
from yibao.db import UnitOfWork, db
from yibao.errors import AppError

from . import idempotency

REPLAY_HEADER = "Idempotent-Replayed"


def plain(value: Any) -> Any:
    """JSON-ready: datetimes as ISO 8601 UTC with Z."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _json_response(status: int, text: str, mimetype: str = "application/json") -> Response:
    return Response(text, status=status, mimetype=mimetype)


def answer(status: int, body: dict[str, Any]) -> Response:
    """A JSON answer (no idempotency record: reads and non-institution writes)."""
    return _json_response(status, json.dumps(plain(body), ensure_ascii=False, separators=(",", ":")))


def respond(uow: UnitOfWork, status: int, body: dict[str, Any]) -> Response:
    """Commit the unit of work together with the idempotency record of this request, then answer."""
    text = json.dumps(plain(body), ensure_ascii=False, separators=(",", ":"))
    claim = g.get("yb_idem_claim")
    if claim is not None:
        idempotency.complete(uow, claim, status, text)
        g.yb_idem_done = True
    uow.commit()
    return _json_response(status, text)


def idempotent(*, required: bool = True) -> Callable:
    """Make an institution POST retry-safe by its Idempotency-Key (scoped to the institution)."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            raw = request.headers.get("Idempotency-Key")
            if raw is None and not required:
                return view(*args, **kwargs)
            key = idempotency.check_key(raw)
            inst = current_institution()
            req_hash = idempotency.request_hash(request.method, request.path, request.get_data(cache=True))
            lock_seconds = current_app.config.get("PAYMENTS_IDEMPOTENCY_LOCK_SECONDS", 30)
            claim = {
                "institution_id": inst.id,
                "key": key,
                "req_hash": req_hash,
                "lock_seconds": lock_seconds,
            }
            # A fresh key (the usual case) is claimed by one self-committing INSERT; an existing key
            # (replay, reuse, in use, takeover) goes through the locking transaction of begin().
            with db.autocommit() as uow:
                outcome: idempotency.Claim | idempotency.Stored | None = idempotency.try_claim(uow, **claim)
            if outcome is None:
                with db.uow() as uow:
                    outcome = idempotency.begin(uow, **claim)
            if isinstance(outcome, idempotency.Stored):
                mimetype = errors.PROBLEM_MIME if outcome.status >= 400 else "application/json"
                resp = _json_response(outcome.status, outcome.body, mimetype)
                resp.headers[REPLAY_HEADER] = "true"
                return resp
            g.yb_idem_claim, g.yb_idem_done = outcome, False
            try:
                resp = view(*args, **kwargs)
            except (AppError, HTTPException) as exc:
                resp = (
                    errors.handle_app_error(exc)
                    if isinstance(exc, AppError)
                    else errors.handle_http_exception(exc)
                )
                _finish_error(outcome, resp)
                return resp
            except BaseException:
                _release(outcome)
                raise
            if not g.yb_idem_done:  # a view that answered without respond(): store it now
                _finish_error(outcome, resp)
            return resp

        return wrapper

    return decorator


def _finish_error(claim: idempotency.Claim, resp: Response) -> None:
    """A refused request had no effect: store the refusal (4xx) for replay, or forget the claim (5xx)."""
    with db.uow() as uow:
        if resp.status_code >= 500:
            idempotency.release(uow, claim)
        else:
            try:
                idempotency.complete(uow, claim, resp.status_code, resp.get_data(as_text=True))
            except AppError:
                return  # taken over after our lease ran out: the new owner decides
        uow.commit()


def _release(claim: idempotency.Claim) -> None:
    try:
        with db.uow() as uow:
            idempotency.release(uow, claim)
            uow.commit()
    except Exception:  # noqa: S110 - the claim then simply expires after its lease
        pass
