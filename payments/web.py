"""Flask glue for payments: who commits a request's unit of work, and idempotent institution POSTs.

One owner of the commit
-----------------------
Views and services never commit. A write request gets exactly one unit of work, owned by one of
two places in this module, and that owner commits it once, after the view returned:

* `@idempotent(...)` (institution POSTs; placed ABOVE `@blp.arguments` / `@blp.response`):

  1. checks the Idempotency-Key header and claims (institution, key) in its own short step
     (idempotency.try_claim under db.autocommit(), or idempotency.begin for a key seen before).
     A finished key replays the stored answer with header `Idempotent-Replayed: true`; a key used
     with another request is IDEMPOTENCY_KEY_REUSED; a key whose claim is still leased is
     IDEMPOTENCY_KEY_IN_USE; a claim past its lease is taken over with a new token.
  2. opens the request's unit of work (db.uow()) and exposes it to the view through
     `request_uow()`, wrapped so that its `commit()` raises (`ViewCommitRefused`).
  3. calls the view; the view returns an object, `@blp.response` serializes it through the
     response schema (the OpenAPI document is the truth of the wire format).
  4. on a success status, stores the serialized body with idempotency.complete() IN THE SAME unit of
     work and commits once: the effects and the stored answer commit together or not at all. A
     crash before that commit leaves no effect and an in-progress claim, retryable after its lease.
  5. on a refusal (AppError or HTTP error), rolls the effects back and, in the same unit of work,
     stores a 4xx answer for replay, or releases the claim for a 5xx so a retry runs again. A
     SUPERVISION_BLOCKED refusal's alerts (rolled back with the effects) are recorded there too, so
     they commit with the stored refusal; a new key is checked afresh (against the rules of then). An
     unexpected exception (a view that commits on its own included) rolls back, releases the claim
     and propagates (500). A claim taken over meanwhile cannot complete: the effects roll back and
     the answer is IDEMPOTENCY_KEY_IN_USE.

  Without a key (only where `required=False`) the same unit of work is committed without a claim.

* `write_uow()` (non-idempotent writes: a user's POST /pay-authorizations, operators' contributions
  and webhook PUT): `with write_uow() as uow:` yields the same commit-refusing wrapper and commits
  when the block ends without an exception (rolls back otherwise).

Reads use `db.uow(readonly=True)` and never commit.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from copy import deepcopy
from typing import Any

from flask import Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from supervision import checks as supervision
from yibao import errors
from yibao.api import Blueprint, current_institution
from yibao.db import UnitOfWork, db
from yibao.errors import AppError

from . import idempotency

REPLAY_HEADER = "Idempotent-Replayed"
# What idempotency.check_key accepts: 1..255 visible ASCII characters.
log = logging.getLogger(__name__)
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7E]{1,255}$"


class ViewCommitRefused(RuntimeError):
    """A view or service called commit() on the request's unit of work: only its owner commits."""


class RequestWork(UnitOfWork):
    """The request's unit of work as views and services see it: the same session, commit() refused."""

    def __init__(self, owner: UnitOfWork) -> None:
        self.session = owner.session

    def commit(self) -> None:
        raise ViewCommitRefused(
            "the request's unit of work is committed by @idempotent or write_uow(), not by views"
        )


def after_commit(fn: Callable[[], None]) -> None:
    """Run `fn` once the request's unit of work has committed (never if it rolls back): for effects
    outside the database that must not announce what did not happen (the payer's page, yibao.events)."""
    g.setdefault("yb_after_commit", []).append(fn)


def _run_after_commit() -> None:
    for fn in g.pop("yb_after_commit", []):
        try:
            fn()
        except Exception:  # the commit stands; a notification is best effort
            log.exception("after-commit callback failed")


def request_uow() -> RequestWork:
    """The unit of work of the current request (inside a view decorated with @idempotent)."""
    uow = g.get("yb_request_uow")
    if uow is None:
        raise RuntimeError("request_uow() outside an @idempotent view")
    return uow


@contextmanager
def write_uow() -> Iterator[RequestWork]:
    """The one place a non-idempotent write commits: when the block ends without an exception."""
    with db.uow() as uow:
        yield RequestWork(uow)
        uow.commit()


def _error_response(exc: AppError | HTTPException) -> Response:
    if isinstance(exc, AppError):
        return errors.handle_app_error(exc)
    return errors.handle_http_exception(exc)


def _replay(stored: idempotency.Stored) -> Response:
    mimetype = errors.PROBLEM_MIME if stored.status >= 400 else "application/json"
    resp = Response(stored.body, status=stored.status, mimetype=mimetype)
    resp.headers[REPLAY_HEADER] = "true"
    return resp


def _claim() -> idempotency.Claim | idempotency.Stored:
    """Claim this request's key (each step commits on its own), or the stored answer, or refuse."""
    key = idempotency.check_key(request.headers.get("Idempotency-Key"))
    claim = {
        "institution_id": current_institution().id,
        "key": key,
        "req_hash": idempotency.request_hash(request.method, request.path, request.get_data(cache=True)),
        "lock_seconds": current_app.config["PAYMENTS_IDEMPOTENCY_LOCK_SECONDS"],
    }
    # A fresh key (the usual case) is claimed by one self-committing INSERT; an existing key
    # (replay, reuse, in use, takeover) goes through the locking transaction of begin().
    with db.autocommit() as uow:
        outcome: idempotency.Claim | idempotency.Stored | None = idempotency.try_claim(uow, **claim)
    if outcome is None:
        with db.uow() as uow:
            outcome = idempotency.begin(uow, **claim)
    return outcome


def _refused(
    uow: UnitOfWork, claim: idempotency.Claim | None, resp: Response, exc: Exception | None = None
) -> Response:
    """The effects are rolled back; store a 4xx refusal for replay, or forget the claim on a 5xx.

    A supervision block's alerts are the one thing a refusal keeps: they are recorded again here.
    """
    uow.rollback()
    if isinstance(exc, supervision.SupervisionBlocked):
        supervision.record_blocked(uow, exc)
    if claim is not None:
        if resp.status_code >= 500:
            idempotency.release(uow, claim)
        else:
            try:
                idempotency.complete(uow, claim, resp.status_code, resp.get_data(as_text=True))
            except AppError:  # taken over after our lease ran out: the new owner decides the answer
                uow.commit()  # (the alerts recorded above still count)
                return resp
    uow.commit()
    return resp


def _release(claim: idempotency.Claim | None) -> None:
    if claim is None:
        return
    try:
        with db.uow() as uow:
            idempotency.release(uow, claim)
            uow.commit()
    except Exception:  # noqa: S110 - the claim then simply expires after its lease
        pass


def _run(view: Callable, claim: idempotency.Claim | None, args: Any, kwargs: Any) -> Response:
    """Run the view in the request's unit of work; commit it once with the stored answer."""
    with db.uow() as uow:
        g.yb_request_uow = RequestWork(uow)
        try:
            resp = view(*args, **kwargs)
            if resp.status_code >= 400:  # a view that answered a refusal without raising
                return _refused(uow, claim, resp)
            if claim is not None:
                idempotency.complete(uow, claim, resp.status_code, resp.get_data(as_text=True))
            uow.commit()
            _run_after_commit()
            return resp
        except (AppError, HTTPException) as exc:
            return _refused(uow, claim, _error_response(exc), exc)
        except BaseException:
            uow.rollback()
            _release(claim)
            raise
        finally:
            g.pop("yb_request_uow", None)
            g.pop("yb_after_commit", None)


def idempotent(*, required: bool = True) -> Callable:
    """Make an institution POST retry-safe by its Idempotency-Key (scoped to the institution), and own
    the request's unit of work (see the module docstring). Documents the header and its codes."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            claim = None
            if required or request.headers.get("Idempotency-Key") is not None:
                outcome = _claim()
                if isinstance(outcome, idempotency.Stored):
                    return _replay(outcome)
                claim = outcome
            return _run(view, claim, args, kwargs)

        wrapper._apidoc = deepcopy(getattr(view, "_apidoc", {}))  # type: ignore[attr-defined]
        manual = wrapper._apidoc.setdefault("manual_doc", {})  # type: ignore[attr-defined]
        manual.setdefault("parameters", []).append(
            {
                "in": "header",
                "name": "Idempotency-Key",
                "required": required,
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": idempotency.MAX_KEY_LEN,
                    "pattern": IDEMPOTENCY_KEY_PATTERN,
                },
                "description": (
                    "1-255 visible ASCII characters, scoped to the institution, kept 24 h: the same key "
                    "and request replay the first answer (header Idempotent-Replayed: true)."
                    + ("" if required else " Optional here.")
                ),
            }
        )
        return Blueprint.problems(
            "IDEMPOTENCY_KEY_REQUIRED", "IDEMPOTENCY_KEY_REUSED", "IDEMPOTENCY_KEY_IN_USE"
        )(wrapper)

    return decorator
