"""What a hospital settlement adds to the order and refund views (the split, the fund refunds)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import object_session

from benefits import split

from .hospital_models import HospitalSettlement
from .models import PaymentOrder, Refund
from .orders import OrderValues

# What the split adds to the order view: the contract's split fields less those the order row already has.
SPLIT_FIELDS = tuple(
    f for f in split.FIELDS if f not in ("account_pay_fen", "mutual_aid_pay_fen", "cash_pay_fen", "total_fen")
)


def order_extra(order: PaymentOrder | OrderValues) -> dict[str, Any]:
    """The split fields a hospital order adds to the order view ({} for a v1 order): those pay left on
    its values (`split_view`, no statement), else those of its settlement row."""
    if order.med_type is None:
        return {}
    if isinstance(order, OrderValues):
        return dict(order.split_view) if hasattr(order, "split_view") else {}
    session = object_session(order)
    hs = session.get(HospitalSettlement, order.id) if session is not None else None
    if hs is None:
        return {}
    return {k: hs.split[k] for k in SPLIT_FIELDS}


def refund_extra(refund_row: Refund) -> dict[str, Any]:
    """The fund amounts a hospital refund gave back ({} for a v1 refund)."""
    session = object_session(refund_row)
    order = session.get(PaymentOrder, refund_row.order_id) if session is not None else None
    if order is None or order.med_type is None:
        return {}
    hs = session.get(HospitalSettlement, refund_row.order_id)
    if hs is None:
        return {}
    return {
        "hifp_refund_fen": hs.split["hifp_pay_fen"],
        "hifmi_refund_fen": hs.split["hifmi_pay_fen"],
        "maf_refund_fen": hs.split["maf_pay_fen"],
        "mutual_aid_refund_fen": order.mutual_aid_pay_fen if order else refund_row.mutual_aid_refund_fen,
    }
