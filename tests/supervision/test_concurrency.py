"""Two counters, two real processes, the last allowed boxes: exactly one sells them (PostgreSQL only)."""

from __future__ import annotations

import multiprocessing as mp
import time
from datetime import timedelta

import pytest

from yibao.db import utcnow

pytestmark = pytest.mark.slow


def _counter(config: dict, pid: int, iid: int, start, out, kind: str) -> None:  # type: ignore[no-untyped-def]
    from supervision import checks
    from yibao import create_app
    from yibao.db import db

    app = create_app(config)
    with app.app_context():
        with db.uow() as warm:  # connect before the start line
            warm.session.connection()
        start.wait()
        try:
            with db.uow() as uow:
                now = utcnow()
                ref = f"{kind}-{mp.current_process().pid}"
                if kind == "order":
                    lines = [("XA01", 2)]
                    checks.check_order(
                        uow,
                        person_id=pid,
                        institution_id=iid,
                        lines=lines,
                        stage="pay",
                        order_ref=ref,
                        now=now,
                    )
                    time.sleep(0.5)  # the other counter checks meanwhile: it must wait for our commit
                    checks.record_sale(
                        uow, person_id=pid, institution_id=iid, lines=lines, order_ref=ref, at=now
                    )
                else:
                    region = "532901" if iid % 2 else "530102"
                    checks.check_scan(
                        uow,
                        person_id=pid,
                        institution_id=iid,
                        institution_region=region,
                        scan_ref=ref,
                        now=now,
                    )
                    time.sleep(0.5)
                    checks.record_accepted_scan(uow, person_id=pid, institution_region=region, at=now)
                uow.commit()
            out.put("ok")
        except checks.SupervisionBlocked:
            out.put("blocked")
        finally:
            app.extensions["yibao.db"]["engine"].dispose()


@pytest.fixture
def pg_only(is_postgres):  # type: ignore[no-untyped-def]
    if not is_postgres:
        pytest.skip("races need PostgreSQL: SQLite serializes all writers, so there is no race to lose")


def _race(app_config, pid: int, iids: list[int], kind: str) -> list[str]:
    ctx = mp.get_context("fork")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_counter, args=(app_config, pid, iid, start, out, kind)) for iid in iids]
    for p in procs:
        p.start()
    time.sleep(1.0)
    start.set()
    results = sorted(out.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    return results


def test_two_counters_cannot_both_sell_the_last_allowed_boxes(app, app_config, sup, person, shops, pg_only):
    pid, a, b = sup.person_id(person), sup.institution_id(shops[0]), sup.institution_id(shops[1])
    sup.quantity_limit("XA01", max_quantity=10, window_days=30)
    sup.sell(pid, a, [("XA01", 8)], at=utcnow() - timedelta(days=1))
    assert _race(app_config, pid, [a, b], "order") == ["blocked", "ok"]
    with sup.read() as uow:
        from sqlalchemy import func, select

        from supervision.models import Sale

        assert uow.session.scalar(select(func.sum(Sale.quantity))) == 10


def test_two_scanners_in_two_prefectures_at_once_accept_one(app, app_config, sup, person, shops, pg_only):
    pid = sup.person_id(person)
    ids = [sup.institution_id(s) for s in shops]
    odd = next(i for i in ids if i % 2)
    even = next(i for i in ids if not i % 2)
    sup.rule("identity_velocity", window_minutes=60, max_prefectures=1)
    assert _race(app_config, pid, [odd, even], "scan") == ["blocked", "ok"]
