"""Supervision test driver: rules through the API, checks and records through the service interface,
exactly as payments and voucher will call them (check, record, commit; a block recorded afresh)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, func, select

from supervision import checks
from supervision.models import Alert
from tests.support import Institution, Person, Yb
from yibao.db import db
from yibao.registry import services as registry

_refs = itertools.count(1)
NOW = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)


def ref(prefix: str = "PO") -> str:
    return f"{prefix}{next(_refs):010d}"


class Sup:
    def __init__(self, app: Any, yb: Yb) -> None:
        self.app, self.yb = app, yb

    # operators
    def rule(self, kind: str, action: str = "block", **params: Any) -> str:
        r = self.yb.admin("POST", "/supervision-rules", {"kind": kind, "params": params, "action": action})
        assert r.status_code == 201, r.get_json()
        return r.get_json()["rule_id"]

    def quantity_limit(self, code: str = "XA01", max_quantity: int = 10, window_days: int = 30, **kw: Any):
        return self.rule(
            "quantity_limit", drug_code=code, max_quantity=max_quantity, window_days=window_days, **kw
        )

    def set_enabled(self, rule_id: str, enabled: bool) -> None:
        r = self.yb.admin("PATCH", f"/supervision-rules/{rule_id}", {"enabled": enabled})
        assert r.status_code == 200, r.get_json()

    # ids of the shell's rows
    def person_id(self, p: Person) -> int:
        with self.app.app_context(), db.uow(readonly=True) as uow:
            return registry.person_by_psn_no(uow, p.psn_no).id

    def institution_id(self, inst: Institution) -> int:
        with self.app.app_context(), db.uow(readonly=True) as uow:
            return registry.institution_by_org_id(uow, inst.org_id).id

    # the interface, one unit of work per call as the callers will have
    def check(
        self,
        pid: int,
        iid: int,
        lines: Iterable[tuple[str, int]],
        *,
        stage: str = "create",
        order_ref: str | None = None,
        now: datetime = NOW,
    ) -> checks.Verdict:
        with self.app.app_context():
            try:
                with db.uow() as uow:
                    verdict = checks.check_order(
                        uow,
                        person_id=pid,
                        institution_id=iid,
                        lines=list(lines),
                        stage=stage,
                        order_ref=order_ref or ref(),
                        now=now,
                    )
                    uow.commit()
                    return verdict
            except checks.SupervisionBlocked as exc:
                with db.uow() as uow:
                    checks.record_blocked(uow, exc)
                    uow.commit()
                raise

    def sell(
        self, pid: int, iid: int, lines: Iterable[tuple[str, int]], *, at: datetime = NOW, order_ref=None
    ) -> str:
        """A pay: check under lock, then count the sale, in one transaction."""
        order_ref = order_ref or ref()
        lines = list(lines)
        with self.app.app_context(), db.uow() as uow:
            checks.check_order(
                uow, person_id=pid, institution_id=iid, lines=lines, stage="pay", order_ref=order_ref, now=at
            )
            checks.record_sale(
                uow, person_id=pid, institution_id=iid, lines=lines, order_ref=order_ref, at=at
            )
            uow.commit()
        return order_ref

    def refund(self, order_ref: str, lines: Iterable[tuple[str, int]] | None = None) -> None:
        with self.app.app_context(), db.uow() as uow:
            checks.record_refund(
                uow, order_ref=order_ref, lines_released=None if lines is None else list(lines)
            )
            uow.commit()

    def scan(self, pid: int, iid: int, region: str, *, at: datetime = NOW, scan_ref: str | None = None):
        """A verification: check, and count the scan when accepted."""
        with self.app.app_context():
            try:
                with db.uow() as uow:
                    verdict = checks.check_scan(
                        uow,
                        person_id=pid,
                        institution_id=iid,
                        institution_region=region,
                        scan_ref=scan_ref or ref("SC"),
                        now=at,
                    )
                    checks.record_accepted_scan(uow, person_id=pid, institution_region=region, at=at)
                    uow.commit()
                    return verdict
            except checks.SupervisionBlocked as exc:
                with db.uow() as uow:
                    checks.record_blocked(uow, exc)
                    uow.commit()
                raise

    @contextmanager
    def read(self) -> Iterator[Any]:
        with self.app.app_context(), db.uow(readonly=True) as uow:
            yield uow

    def alert_count(self) -> int:
        with self.app.app_context(), db.uow(readonly=True) as uow:
            return uow.session.scalar(select(func.count(Alert.id)))


def quantity_rule(
    yb: Yb, action: str = "block", *, code: str = "XA01", max_quantity: int = 2, days: int = 30
) -> str:
    """A quantity_limit rule through the admin API: its rule_id."""
    params = {"drug_code": code, "max_quantity": max_quantity, "window_days": days}
    r = yb.admin("POST", "/supervision-rules", {"kind": "quantity_limit", "params": params, "action": action})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["rule_id"]


def velocity_rule(yb: Yb, action: str = "block", *, minutes: int = 60, max_prefectures: int = 1) -> str:
    """An identity_velocity rule through the admin API: its rule_id."""
    params = {"window_minutes": minutes, "max_prefectures": max_prefectures}
    r = yb.admin(
        "POST", "/supervision-rules", {"kind": "identity_velocity", "params": params, "action": action}
    )
    assert r.status_code == 201, r.get_json()
    return r.get_json()["rule_id"]


def set_enabled(yb: Yb, rule_id: str, enabled: bool) -> None:
    r = yb.admin("PATCH", f"/supervision-rules/{rule_id}", {"enabled": enabled})
    assert r.status_code == 200, r.get_json()


class StatementCounter:
    """Counts the SQL statements sent on an engine while active."""

    def __init__(self, engine: Any) -> None:
        self.engine, self.statements = engine, []

    def _on(self, _conn, _cursor, statement, *_: Any) -> None:  # type: ignore[no-untyped-def]
        self.statements.append(statement)

    def __enter__(self) -> StatementCounter:
        event.listen(self.engine, "before_cursor_execute", self._on)
        return self

    def __exit__(self, *_: Any) -> None:
        event.remove(self.engine, "before_cursor_execute", self._on)


def statement_shapes(app: Any, fn: Any) -> list[str]:
    """The statements `fn` sends, as "VERB table", transaction control and institution authentication
    left out (its own path)."""
    with app.app_context():
        engine = db.engine
    with StatementCounter(engine) as counter:
        fn()
    out = []
    for st in counter.statements:
        words = st.split()
        verb = words[0].upper()
        if verb in ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"):
            continue
        table = _main_from(st) if verb == "SELECT" else words[2 if verb != "UPDATE" else 1]
        if table != "institutions":
            out.append(f"{verb} {table}")
    return out


def _main_from(statement: str) -> str:
    """The table after the top-level FROM (not a subquery's)."""
    depth = 0
    for i, ch in enumerate(statement):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0 and statement.startswith("FROM ", i) and statement[i - 1].isspace():
            return statement[i + 5 :].split()[0]
    raise AssertionError(statement)


def days(n: float) -> timedelta:
    return timedelta(days=n)


def window_oracle(sales: Iterable[tuple], code: str, since: datetime) -> dict[int, int]:
    """Units per institution of `code` sold strictly after `since`, less what refunds released, from
    (code, institution_id, sold_at, quantity, released) tuples."""
    out: dict[int, int] = {}
    for s_code, inst, at, quantity, released in sales:
        if s_code == code and at > since and quantity > released:
            out[inst] = out.get(inst, 0) + quantity - released
    return out


def read_windows(uow: Any, person_id: int, starts: list[tuple[str, datetime]]) -> dict:
    """queries.window_sums of each (code, start), as check_order reads them."""
    from supervision import queries as q

    return q.window_sums(uow, person_id, starts)
