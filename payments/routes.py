"""Payment endpoints (issue #4). Views parse, open a unit of work, call a service, answer."""

from __future__ import annotations

from flask import Response, request

from yibao import api as yb_api
from yibao.api import Blueprint, current_institution, current_user
from yibao.db import db, utcnow
from yibao.registry import services as registry

from . import services, webhooks
from .schemas import (
    AccountOut,
    AccountQuery,
    ContributionIn,
    EntriesQuery,
    OrderIn,
    OrderOut,
    PayAuthorizationIn,
    PayAuthorizationOut,
    RefundIn,
    RefundOut,
    StatementQuery,
    WebhookIn,
)
from .web import answer as _json
from .web import idempotent, respond

blp = Blueprint("payments", __name__, url_prefix="/api/v1", description="Personal-account payments")

IDEMPOTENCY_DOC = {
    "parameters": [
        {
            "in": "header",
            "name": "Idempotency-Key",
            "required": True,
            "schema": {"type": "string", "maxLength": 255},
            "description": "Scoped to the institution, kept 24 h: same key and body replay the first answer.",
        }
    ]
}


# ---------------------------------------------------------------- users


@blp.route("/pay-authorizations", methods=["POST"])
@blp.user
@blp.arguments(PayAuthorizationIn)
@blp.response(201, PayAuthorizationOut)
def create_pay_authorization(args: dict) -> Response:
    """Authorize one payment from your (or a family member's) personal account: single use, 5 minutes."""
    user = current_user()
    with db.uow() as uow:
        grant = services.create_pay_authorization(
            uow, actor_person_id=user.person_id, purpose=args["purpose"], on_behalf_of=args["on_behalf_of"]
        )
        uow.commit()
        body = {
            "pay_auth_no": grant.grant_key,
            "purpose": grant.purpose,
            "expires_at": grant.expires_at,
            "expires_in": int((grant.expires_at - utcnow()).total_seconds()),
        }
    return _json(201, body)


@blp.route("/accounts/me", methods=["GET"])
@blp.user
@blp.arguments(AccountQuery, location="query")
@blp.response(200, AccountOut)
def account_me(args: dict) -> Response:
    """Your personal-account balance (or a family member's, when the binding allows read_account)."""
    user = current_user()
    with db.uow(readonly=True) as uow:
        pid = services.acting_member(uow, user.person_id, args["on_behalf_of"], "read_account")
        acct = services.account_of(uow, pid)
        person = registry.person_by_id(uow, pid)
        return _json(200, {"psn_no": person.psn_no, "balance_fen": acct.balance_fen})


@blp.route("/accounts/me/entries", methods=["GET"])
@blp.user
@blp.arguments(EntriesQuery, location="query")
def account_entries(args: dict) -> Response:
    """Your ledger entries, newest first; pass `cursor` = next_cursor for the next page."""
    user = current_user()
    with db.uow(readonly=True) as uow:
        pid = services.acting_member(uow, user.person_id, args["on_behalf_of"], "read_account")
        acct = services.account_of(uow, pid)
        rows, nxt = services.list_entries(uow, acct.id, limit=args["limit"], before=args["cursor"])
        items = [vars(r) for r in rows]
    return _json(200, {"items": items, "next_cursor": nxt})


# ---------------------------------------------------------------- institutions


def _items(args: dict) -> list[services.ItemIn]:
    return [
        services.ItemIn(
            drug_code=i["drug_code"],
            drug_name=i["drug_name"],
            otc=i["otc"],
            quantity=i["quantity"],
            unit_price_fen=i["unit_price_fen"],
            trace_codes=tuple(i["trace_codes"]),
        )
        for i in args["items"]
    ]


@blp.route("/payment-orders", methods=["POST"])
@blp.institution
@idempotent()
@blp.arguments(OrderIn)
@blp.response(201, OrderOut)
@blp.doc(**IDEMPOTENCY_DOC)
def create_order(args: dict) -> Response:
    """Place a payment order from a pay_auth_no (online OTC or counter) or a counter ec_token."""
    inst = current_institution()
    with db.uow() as uow:
        order = services.create_order(
            uow,
            institution_id=inst.id,
            pay_auth_no=args["pay_auth_no"],
            ec_token=args["ec_token"],
            merchant_order_no=args["merchant_order_no"],
            items=_items(args),
            delivery_fee_fen=args["delivery_fee_fen"],
            account_only=args["account_only"],
        )
        return respond(uow, 201, services.order_view(order))


@blp.route("/payment-orders/<pay_order_id>/pay", methods=["POST"])
@blp.institution
@idempotent()
@blp.response(200, OrderOut)
@blp.doc(**IDEMPOTENCY_DOC)
def pay(pay_order_id: str) -> Response:
    """Settle the order: account debit, traceability codes, ledger and status in one transaction."""
    inst = current_institution()
    with db.uow() as uow:
        order = services.pay_order(uow, pay_order_id=pay_order_id, institution_id=inst.id)
        return respond(uow, 200, services.order_view(order))


@blp.route("/payment-orders/<pay_order_id>/cancel", methods=["POST"])
@blp.institution
@idempotent(required=False)
@blp.response(200, OrderOut)
def cancel(pay_order_id: str) -> Response:
    """Revoke an unpaid order (Idempotency-Key optional)."""
    inst = current_institution()
    with db.uow() as uow:
        order = services.cancel_order(uow, pay_order_id=pay_order_id, institution_id=inst.id)
        return respond(uow, 200, services.order_view(order))


@blp.route("/payment-orders/<pay_order_id>/refunds", methods=["POST"])
@blp.institution
@idempotent()
@blp.arguments(RefundIn)
@blp.response(201, RefundOut)
@blp.doc(**IDEMPOTENCY_DOC)
def refund(args: dict, pay_order_id: str) -> Response:
    """Refund all (no amount_fen) or part of a paid order; insurance money is returned first."""
    inst = current_institution()
    with db.uow() as uow:
        r = services.refund_order(
            uow,
            pay_order_id=pay_order_id,
            institution_id=inst.id,
            amount_fen=args["amount_fen"],
            reason=args["reason"],
            trace_codes=args["trace_codes"],
        )
        return respond(uow, 201, services.refund_view(r))


@blp.route("/payment-orders/<pay_order_id>", methods=["GET"])
@blp.response(200, OrderOut)
@blp.doc(security=[{"InstitutionSignature": []}, {"UserBearer": []}])
def get_order(pay_order_id: str) -> Response:
    """The order, its items and refunds: for the owning institution or the payer only."""
    if request.headers.get("X-Yb-Key"):
        yb_api.authenticate_institution()
        who = {"institution_id": current_institution().id}
    else:
        yb_api.authenticate_user()
        who = {"person_id": current_user().person_id}
    with db.uow(readonly=True) as uow:
        order = services.order_for_reader(uow, pay_order_id, **who)
        body = services.order_view(order)
        actor = registry.person_by_id(uow, order.actor_person_id) if order.actor_person_id else None
        body["acted_by"] = actor.psn_no if actor else None  # who acted for the payer (family binding)
        body["items"] = [
            {
                "line_no": i.line_no,
                "drug_code": i.drug_code,
                "drug_name": i.drug_name,
                "otc": i.otc,
                "quantity": i.quantity,
                "unit_price_fen": i.unit_price_fen,
                "trace_codes": i.trace_codes,
            }
            for i in services.order_items(uow, order)
        ]
        body["refunds"] = [services.refund_view(r) for r in services.order_refunds(uow, order)]
    return _json(200, body)


@blp.route("/statements", methods=["GET"])
@blp.institution
@blp.arguments(StatementQuery, location="query")
def get_statement(args: dict) -> Response:
    """The institution's statement for one Beijing calendar day, reconciled against the ledger."""
    inst = current_institution()
    with db.uow(readonly=True) as uow:
        body = services.statement(uow, institution_id=inst.id, day=args["date"])
    return _json(200, {"org_id": inst.org_id, **body})


# ---------------------------------------------------------------- operators


@blp.route("/admin/contributions", methods=["POST"])
@blp.admin
@blp.arguments(ContributionIn)
def credit_contribution(args: dict) -> Response:
    """Credit a yearly contribution; once per (psn_no, year): a replay answers 200 without effect."""
    with db.uow() as uow:
        res = services.credit_contribution(uow, **args)
        uow.commit()
    return _json(201 if res.created else 200, vars(res))


@blp.route("/admin/institutions/<org_id>/webhook", methods=["PUT"])
@blp.admin
@blp.arguments(WebhookIn)
def set_webhook(args: dict, org_id: str) -> Response:
    """Set the webhook URL and issue a new signing secret (shown here and by GET)."""
    with db.uow() as uow:
        info = webhooks.set_endpoint(uow, org_id, args["url"])
        uow.commit()
    return _json(200, {"url": info.url, "secret": info.secret})


@blp.route("/admin/institutions/<org_id>/webhook", methods=["GET"])
@blp.admin
def get_webhook(org_id: str) -> Response:
    """The webhook URL and signing secret of an institution."""
    with db.uow(readonly=True) as uow:
        info = webhooks.get_endpoint(uow, org_id)
    return _json(200, {"url": info.url, "secret": info.secret})


@blp.route("/admin/ledger/reconciliation", methods=["GET"])
@blp.admin
def reconciliation() -> Response:
    """Whole-ledger check: balanced, sealed, balances = entries, none negative."""
    with db.uow(readonly=True) as uow:
        return _json(200, services.reconcile(uow))
