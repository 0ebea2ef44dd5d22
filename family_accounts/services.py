"""Family services used by other domains. No Flask here.

Interface (other domains call only these):
  - acting_permission(uow, actor_person_id=..., member_psn_no=..., action=...) -> member person id
    action in ACTIONS; raises AppError NOT_PERMITTED / BINDING_NOT_ACTIVE.
  - mutual_aid_holders(uow, member_person_id=...) -> list[int] of holder person ids, in charge order.
"""

from __future__ import annotations

from yibao.db import UnitOfWork
from yibao.errors import AppError, register_messages

ACTIONS = ("show_voucher", "pay", "read_usage", "read_account")

register_messages(
    {
        "FAMILY_LIMIT_REACHED": (409, "At most 5 active family members.", "亲情账户最多绑定 5 名成员。"),
        "RELATIONSHIP_NOT_ALLOWED": (422, "This relationship is not allowed here.", "该亲属关系不被允许。"),
        "BINDING_NOT_ACTIVE": (409, "The family binding is not active.", "亲情账户绑定未生效。"),
    }
)


def acting_permission(uow: UnitOfWork, *, actor_person_id: int, member_psn_no: str, action: str) -> int:
    """Return the member's person id if the actor holds an active binding for them; else NOT_PERMITTED."""
    # Until bindings land (issue #5) nobody may act for anybody else.
    raise AppError("NOT_PERMITTED")


def mutual_aid_holders(uow: UnitOfWork, *, member_person_id: int) -> list[int]:
    """Person ids whose personal accounts may pay for this member (family mutual aid), in order."""
    return []
