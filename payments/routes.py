"""Payment endpoints (issue #4). Views parse, call a service, return an object; `@blp.response`
serializes it through its schema. Views never commit: see payments/web.py for who does."""

from __future__ import annotations

from flask import request

from benefits import summary as benefit_summary
from benefits.schemas import BenefitsOutSchema, BenefitsQuerySchema
from yibao import api as yb_api
from yibao.api import Blueprint, current_institution, current_user
from yibao.china_time import china_date
from yibao.db import db, utcnow
from yibao.events import stream as events
from yibao.redis_store import redis_ext
from yibao.registry import services as registry

from . import (
    accounts,
    grants,
    hospital,
    order_reads,
    orders,
    payers,
    refunds,
    settlement,
    statements,
    webhooks,
)
from .errors import HOSPITAL_SCOPE_NOT_ALLOWED
from .schemas import (
    PAY_ORDER_ID_PATTERN,
    AccountOut,
    AccountQuery,
    CheckedOrderOut,
    ContributionIn,
    ContributionOut,
    EntriesOut,
    EntriesQuery,
    OrderDetailOut,
    OrderIn,
    OrderOut,
    PayAuthorizationIn,
    PayAuthorizationOut,
    ReconciliationOut,
    RefundIn,
    RefundOut,
    StatementOut,
    StatementQuery,
    WebhookIn,
    WebhookOut,
)
from .web import after_commit, idempotent, request_uow, write_uow

blp = Blueprint("payments", __name__, url_prefix="/api/v1", description="Personal-account payments")

ORDER_ID = [
    {
        "in": "path",
        "name": "pay_order_id",
        "schema": {"type": "string", "pattern": PAY_ORDER_ID_PATTERN},
        "description": "The pay_order_id the order was placed with.",
    }
]
# What family_accounts.acting answers when someone acts for a member (on_behalf_of).
ACTING = ("NOT_PERMITTED", "PERSON_SUSPENDED", "BINDING_NOT_ACTIVE")


# ---------------------------------------------------------------- users


@blp.route("/pay-authorizations", methods=["POST"])
@blp.user
@blp.arguments(PayAuthorizationIn)
@blp.response(201, PayAuthorizationOut)
@blp.problems(*ACTING)
def create_pay_authorization(args: dict) -> dict:
    """Authorize one payment from your (or a family member's) personal account: single use, 5 minutes."""
    user = current_user()
    with write_uow() as uow:
        grant = grants.create_pay_authorization(
            uow, actor_person_id=user.person_id, purpose=args["purpose"], on_behalf_of=args["on_behalf_of"]
        )
    return {
        "pay_auth_no": grant.grant_key,
        "purpose": grant.purpose,
        "expires_at": grant.expires_at,
        "expires_in": int((grant.expires_at - utcnow()).total_seconds()),
    }


@blp.route("/accounts/me", methods=["GET"])
@blp.user
@blp.arguments(AccountQuery, location="query")
@blp.response(200, AccountOut)
@blp.problems(*ACTING, "NO_PERSONAL_ACCOUNT")
def account_me(args: dict) -> dict:
    """Your personal-account balance (or a family member's, when the binding allows read_account)."""
    user = current_user()
    with db.uow(readonly=True) as uow:
        pid = payers.acting_member(uow, user.person_id, args["on_behalf_of"], "read_account")
        acct = accounts.account_of(uow, pid)
        person = registry.person_by_id(uow, pid)
        return {"psn_no": person.psn_no, "balance_fen": acct.balance_fen}


@blp.route("/accounts/me/entries", methods=["GET"])
@blp.user
@blp.arguments(EntriesQuery, location="query")
@blp.response(200, EntriesOut)
@blp.problems(*ACTING, "NO_PERSONAL_ACCOUNT")
def account_entries(args: dict) -> accounts.EntryPage:
    """Your ledger entries, newest first; pass `cursor` = next_cursor for the next page."""
    user = current_user()
    with db.uow(readonly=True) as uow:
        pid = payers.acting_member(uow, user.person_id, args["on_behalf_of"], "read_account")
        acct = accounts.account_of(uow, pid)
        return accounts.list_entries(uow, acct.id, limit=args["limit"], before=args["cursor"])


@blp.route("/accounts/me/benefits", methods=["GET"])
@blp.user
@blp.arguments(BenefitsQuerySchema, location="query")
@blp.response(200, BenefitsOutSchema)
@blp.problems(*ACTING)
def benefits_me(args: dict) -> dict:
    """Your running benefit totals of a year (default: this Beijing year) and what is left of each cap;
    `psn_no` for a family member whose binding allows read_account."""
    user = current_user()
    with db.uow(readonly=True) as uow:
        pid = payers.acting_member(uow, user.person_id, args["psn_no"], "read_account")
        person = registry.person_by_id(uow, pid)
        year = args["year"] or china_date(utcnow()).year
        return benefit_summary.benefits_of(uow, person, year)


# ---------------------------------------------------------------- institutions


def _items(args: dict) -> list[orders.ItemIn]:
    return [
        orders.ItemIn(
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
@blp.response(201, CheckedOrderOut)
@blp.problems(
    "TRACE_CODE_COUNT_MISMATCH",
    "TRACE_CODE_MALFORMED",
    "TRACE_CODE_DUPLICATE",
    "AMOUNT_TOO_LARGE",
    "PAY_AUTH_INVALID",
    "PAY_AUTH_ALREADY_USED",
    "INSTITUTION_NOT_DESIGNATED",
    "BUSINESS_TYPE_NOT_PAYABLE",
    "EC_TOKEN_INVALID",
    "ITEM_NOT_ELIGIBLE",
    *ACTING,
    "TRACE_CODE_ALREADY_SETTLED",
    "INSUFFICIENT_BALANCE",
    "SUPERVISION_BLOCKED",
    "MERCHANT_ORDER_EXISTS",
    HOSPITAL_SCOPE_NOT_ALLOWED,  # 422 SCOPE_NOT_ALLOWED, the hospital order's meaning (errors.py)
    "BENEFIT_POLICY_MISSING",
)
def create_order(args: dict) -> dict:
    """Place a payment order from a pay_auth_no (online OTC or counter) or a counter ec_token.

    With `med_type` (a hospital, an ec_token of business type 01301) the answer carries the split
    between the funds and the person, fixed when `pay` runs (docs/hospital.md)."""
    if args["med_type"] is not None:
        return orders.checked_view(
            hospital.create_order(
                request_uow(),
                institution_id=current_institution().id,
                ec_token=args["ec_token"],
                merchant_order_no=args["merchant_order_no"],
                med_type=args["med_type"],
                items=[
                    hospital.HospitalItemIn(
                        i["item_code"],
                        i["item_name"],
                        i["category"],
                        i["quantity"],
                        i["unit_price_fen"],
                        tuple(i["trace_codes"]),
                    )
                    for i in args["items"]
                ],
            )
        )
    checked = orders.create_order(
        request_uow(),
        institution_id=current_institution().id,
        pay_auth_no=args["pay_auth_no"],
        ec_token=args["ec_token"],
        merchant_order_no=args["merchant_order_no"],
        items=_items(args),
        delivery_fee_fen=args["delivery_fee_fen"],
        account_only=args["account_only"],
    )
    return orders.checked_view(checked)


@blp.route("/payment-orders/<pay_order_id>/pay", methods=["POST"], parameters=ORDER_ID)
@blp.institution
@idempotent()
@blp.response(200, CheckedOrderOut)
@blp.problems(
    "ORDER_NOT_FOUND",
    "ORDER_STATE_CONFLICT",
    "ORDER_EXPIRED",
    *ACTING,
    "SUPERVISION_BLOCKED",
    "INSUFFICIENT_BALANCE",
    "TRACE_CODE_ALREADY_SETTLED",
    "BENEFIT_POLICY_MISSING",
)
def pay(pay_order_id: str) -> dict:
    """Settle the order: account debit, traceability codes, ledger and status in one transaction."""
    checked = settlement.pay_order(
        request_uow(), pay_order_id=pay_order_id, institution_id=current_institution().id
    )
    view = orders.checked_view(checked)
    order = checked.order
    after_commit(lambda: _publish_payment(view, order.payer_person_id, order.actor_person_id))
    return view


def _publish_payment(view: dict, person_id: int, actor_person_id: int | None) -> None:
    """After pay's commit: the payer's page (and the relative's who paid for them) shows the split."""
    keys = ("pay_order_id", "status", "total_fen", "account_pay_fen", "mutual_aid_pay_fen", "cash_pay_fen")
    payload = {k: view[k] for k in keys}
    for pid in {person_id, actor_person_id} - {None}:
        events.publish(redis_ext.client, pid, "payment", payload)  # never raises


@blp.route("/payment-orders/<pay_order_id>/cancel", methods=["POST"], parameters=ORDER_ID)
@blp.institution
@idempotent(required=False)
@blp.response(200, OrderOut)
@blp.problems("ORDER_NOT_FOUND", "ORDER_STATE_CONFLICT")
def cancel(pay_order_id: str) -> dict:
    """Revoke an unpaid order (Idempotency-Key optional)."""
    order = orders.cancel_order(
        request_uow(), pay_order_id=pay_order_id, institution_id=current_institution().id
    )
    return orders.order_view(order)


@blp.route("/payment-orders/<pay_order_id>/refunds", methods=["POST"], parameters=ORDER_ID)
@blp.institution
@idempotent()
@blp.arguments(RefundIn)
@blp.response(201, RefundOut)
@blp.problems(
    "ORDER_NOT_FOUND",
    "ORDER_STATE_CONFLICT",
    "REFUND_EXCEEDS_PAID",
    "TRACE_CODE_MALFORMED",
    "TRACE_CODE_NOT_IN_ORDER",
    "REFUND_TOO_SMALL_FOR_CODES",
    "REFUND_MUST_BE_WHOLE",
)
def refund(args: dict, pay_order_id: str) -> dict:
    """Refund all (no amount_fen) or part of a paid order; insurance money is returned first."""
    r = refunds.refund_order(
        request_uow(),
        pay_order_id=pay_order_id,
        institution_id=current_institution().id,
        amount_fen=args["amount_fen"],
        reason=args["reason"],
        trace_codes=args["trace_codes"],
    )
    return refunds.refund_view(r)


@blp.route("/payment-orders/<pay_order_id>", methods=["GET"], parameters=ORDER_ID)
@blp.response(200, OrderDetailOut)
@blp.doc(security=[{"InstitutionSignature": []}, {"UserBearer": []}])
@blp.problems(
    "INSTITUTION_AUTH_FAILED",
    "INSTITUTION_DISABLED",
    "REPLAY_STORE_UNAVAILABLE",
    "AUTHENTICATION_REQUIRED",
    "TOKEN_INVALID",
    "ORDER_NOT_FOUND",
)
def get_order(pay_order_id: str) -> dict:
    """The order, its items and refunds: for the owning institution or the payer only."""
    if request.headers.get("X-Yb-Key"):
        yb_api.authenticate_institution()
        who = {"institution_id": current_institution().id}
    else:
        yb_api.authenticate_user()
        who = {"person_id": current_user().person_id}
    with db.uow(readonly=True) as uow:
        order = order_reads.order_for_reader(uow, pay_order_id, **who)
        return order_reads.order_detail(uow, order)


@blp.route("/statements", methods=["GET"])
@blp.institution
@blp.arguments(StatementQuery, location="query")
@blp.response(200, StatementOut)
def get_statement(args: dict) -> dict:
    """The institution's statement for one Beijing calendar day, reconciled against the ledger."""
    inst = current_institution()
    with db.uow(readonly=True) as uow:
        body = statements.statement(uow, institution_id=inst.id, day=args["date"])
    return {"org_id": inst.org_id, **body}


# ---------------------------------------------------------------- operators


@blp.route("/admin/contributions", methods=["POST"])
@blp.admin
@blp.arguments(ContributionIn)
@blp.response(201, ContributionOut, description="Credited.")
@blp.alt_response(200, schema=ContributionOut, description="Already credited with this amount: no effect.")
@blp.problems("PERSON_NOT_FOUND", "AMOUNT_TOO_LARGE", "NO_PERSONAL_ACCOUNT", "CONTRIBUTION_CONFLICT")
def credit_contribution(args: dict) -> tuple[accounts.ContributionResult, int]:
    """Credit a yearly contribution; once per (psn_no, year): a replay answers 200 without effect."""
    with write_uow() as uow:
        res = accounts.credit_contribution(uow, **args)
    return res, 201 if res.created else 200


@blp.route("/admin/institutions/<org_id>/webhook", methods=["PUT"])
@blp.admin
@blp.arguments(WebhookIn)
@blp.response(200, WebhookOut)
@blp.problems("INSTITUTION_NOT_FOUND")
def set_webhook(args: dict, org_id: str) -> webhooks.EndpointInfo:
    """Set the webhook URL and issue a new signing secret (shown here and by GET)."""
    with write_uow() as uow:
        return webhooks.set_endpoint(uow, org_id, args["url"])


@blp.route("/admin/institutions/<org_id>/webhook", methods=["GET"])
@blp.admin
@blp.response(200, WebhookOut)
@blp.problems("NOT_FOUND")
def get_webhook(org_id: str) -> webhooks.EndpointInfo:
    """The webhook URL and signing secret of an institution."""
    with db.uow(readonly=True) as uow:
        return webhooks.get_endpoint(uow, org_id)


@blp.route("/admin/ledger/reconciliation", methods=["GET"])
@blp.admin
@blp.response(200, ReconciliationOut)
def reconciliation() -> dict:
    """Whole-ledger check: balanced, sealed, balances = entries, none negative."""
    with db.uow(readonly=True) as uow:
        return statements.reconcile(uow)
