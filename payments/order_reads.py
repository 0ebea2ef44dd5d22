"""What readers of an order see (GET /payment-orders/{id}): who may read it, and its details."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from family_accounts import acting as family
from yibao.db import UnitOfWork
from yibao.errors import AppError
from yibao.registry import services as registry

from . import orders, refunds
from .models import OrderItem, PaymentOrder


def order_for_reader(
    uow: UnitOfWork, pay_order_id: str, *, institution_id: int | None = None, person_id: int | None = None
) -> PaymentOrder:
    """The owning institution, the payer, or the relative who acted for the payer while the
    binding still lets them read the payer's account; everyone else: not found.

    Raises: ORDER_NOT_FOUND.
    """
    order = uow.session.scalar(select(PaymentOrder).where(PaymentOrder.pay_order_id == pay_order_id))
    if order is None:
        raise AppError("ORDER_NOT_FOUND")
    if institution_id is not None and order.institution_id == institution_id:
        return order
    if person_id is not None and person_id == order.payer_person_id:
        return order
    if person_id is not None and person_id == order.actor_person_id:
        payer = registry.person_by_id(uow, order.payer_person_id)
        try:  # checked now: an ended binding ends the view of the member's orders (refunds included)
            family.acting_permission(
                uow, actor_person_id=person_id, member_psn_no=payer.psn_no, action="read_account"
            )
        except AppError:
            raise AppError("ORDER_NOT_FOUND") from None
        return order
    raise AppError("ORDER_NOT_FOUND")


def order_items(uow: UnitOfWork, order: PaymentOrder) -> list[OrderItem]:
    return list(
        uow.session.scalars(
            select(OrderItem).where(OrderItem.order_id == order.id).order_by(OrderItem.line_no)
        )
    )


def order_detail(uow: UnitOfWork, order: PaymentOrder) -> dict[str, Any]:
    """The order (orders.order_view) with who acted for the payer, its items and its refunds
    (schemas.OrderDetailOut)."""
    actor = registry.person_by_id(uow, order.actor_person_id) if order.actor_person_id else None
    return {
        **orders.order_view(order),
        "acted_by": actor.psn_no if actor else None,  # who acted for the payer (family binding)
        "items": order_items(uow, order),
        "refunds": [refunds.refund_view(r) for r in refunds.order_refunds(uow, order)],
    }
