"""Fund statements (the 3201 totals) for hospitals, and the operators' fund reconciliation: routes on the
payments blueprint (registered with it, payments/__init__.py)."""

from __future__ import annotations

from yibao.api import current_institution
from yibao.db import db

from . import fund_statements
from .fund_schemas import FundReconciliationOut, FundStatementOut, PeriodQuery
from .routes import blp


@blp.route("/statements/funds", methods=["GET"])
@blp.institution
@blp.arguments(PeriodQuery, location="query")
@blp.response(200, FundStatementOut)
def get_fund_statement(args: dict) -> dict:
    """The institution's hospital settlements of a period (Beijing dates `from`..`to`, at most 366 days) per
    insurance type and policy region: counts and amounts per fund, settlements, refunds and net (3201)."""
    inst = current_institution()
    with db.uow(readonly=True) as uow:
        body = fund_statements.fund_totals(uow, start=args["from_"], end=args["to"], institution_id=inst.id)
    return {"org_id": inst.org_id, **body}


@blp.route("/admin/ledger/reconciliation/funds", methods=["GET"])
@blp.admin
@blp.arguments(PeriodQuery, location="query")
@blp.response(200, FundReconciliationOut)
def fund_reconciliation(args: dict) -> dict:
    """Every hospital settlement of a period per fund and policy region against that fund's ledger account
    (`hifp:532900`, …), and the period's totals per insurance type."""
    with db.uow(readonly=True) as uow:
        return fund_statements.fund_reconciliation(uow, start=args["from_"], end=args["to"])
