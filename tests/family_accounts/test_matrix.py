"""Authorization matrix: every family, voucher, payment and account endpoint a user calls, tried as
the owner (the member), an active binder, a pending binder, an ended binder and a stranger.

Each cell runs in a fresh world so that no answer depends on an earlier cell. Expected answers
follow DESIGN.md's v1 contract and family_accounts' rules:
  - acting for a member: owner and active binder succeed; a pending binder gets 409
    BINDING_NOT_ACTIVE (the binding exists, waiting for consent); an ended binder and a stranger
    get 403 NOT_PERMITTED.
  - a binding or filing the caller is not a side of is 404 (its id reveals nothing).
  - only the member approves or declines (the binder gets 403 NOT_PERMITTED).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support import Person

from .support import Family

ROLES = ("owner", "active_binder", "pending_binder", "ended_binder", "stranger")


@dataclass
class World:
    """The member M and one person per role, each holding the binding their name says."""

    people: dict[str, Person]
    refs: dict[str, str]


def build_world(fam: Family, needs: set[str]) -> World:
    member = fam.adult(balance=10_000)
    active, pending, ended, stranger = (fam.adult(balance=5_000) for _ in range(4))
    refs = {"M": member.psn_no}
    refs["B_ACTIVE"] = fam.active(active, member)
    refs["B_PENDING"] = fam.pending(pending, member)
    refs["B_ENDED"] = fam.ended(ended, member)
    if "filing" in needs:  # M shares her own account with the active binder (her son)
        refs["F_OWNER"] = fam.file_and_approve(member, active, "child")
    if "own_order" in needs or "binder_order" in needs:
        shop = fam.yb.institution(kind="online_pharmacy", name="线上药房")
        for key, payer_side in (("own_order", member), ("binder_order", active)):
            if key not in needs:
                continue
            body: dict[str, Any] = {"purpose": "online_otc"}
            if payer_side is not member:
                body["on_behalf_of"] = member.psn_no
            auth = fam.yb.as_user(payer_side, "POST", "/pay-authorizations", body)
            assert auth.status_code == 201, auth.get_json()
            order = fam.yb.as_institution(
                shop,
                "POST",
                "/payment-orders",
                {
                    "pay_auth_no": auth.get_json()["pay_auth_no"],
                    "merchant_order_no": "MO" + secrets.token_hex(6),
                    "items": [
                        {
                            "drug_code": "XA01",
                            "drug_name": "布洛芬缓释胶囊",
                            "otc": True,
                            "quantity": 1,
                            "unit_price_fen": 1200,
                            "trace_codes": [],
                        }
                    ],
                    "delivery_fee_fen": 0,
                },
                headers={"Idempotency-Key": secrets.token_hex(8)},
            )
            assert order.status_code == 201, order.get_json()
            refs["O_OWN" if key == "own_order" else "O_BINDER"] = order.get_json()["pay_order_id"]
    people = {
        "owner": member,
        "active_binder": active,
        "pending_binder": pending,
        "ended_binder": ended,
        "stranger": stranger,
    }
    return World(people, refs)


OK200, OK201 = (200, None), (201, None)
NOT_ACTIVE, NOT_PERMITTED = (409, "BINDING_NOT_ACTIVE"), (403, "NOT_PERMITTED")
B404, F404, O404 = (404, "BINDING_NOT_FOUND"), (404, "MUTUAL_AID_FILING_NOT_FOUND"), (404, "ORDER_NOT_FOUND")
ACTING = (OK200, OK200, NOT_ACTIVE, NOT_PERMITTED, NOT_PERMITTED)
ACTING_201 = (OK201, OK201, NOT_ACTIVE, NOT_PERMITTED, NOT_PERMITTED)

# (row id, domain, method, path, json body or None, needs, expected per ROLES)
MATRIX: list[tuple[str, str, str, str, Any, set[str], tuple]] = [
    # --- family ---------------------------------------------------------------------------------
    ("list bindings", "family", "GET", "/family/bindings", None, set(), (OK200,) * 5),
    ("list events", "family", "GET", "/family/events", None, set(), (OK200,) * 5),
    (
        "get the active binding",
        "family",
        "GET",
        "/family/bindings/{B_ACTIVE}",
        None,
        set(),
        (OK200, OK200, B404, B404, B404),
    ),
    (
        "events of the pending binding",
        "family",
        "GET",
        "/family/bindings/{B_PENDING}/events",
        None,
        set(),
        (OK200, B404, OK200, B404, B404),
    ),
    (
        "approve the pending binding",
        "family",
        "POST",
        "/family/bindings/{B_PENDING}/approve",
        None,
        set(),
        (OK200, B404, NOT_PERMITTED, B404, B404),
    ),
    (
        "decline the pending binding",
        "family",
        "POST",
        "/family/bindings/{B_PENDING}/decline",
        None,
        set(),
        (OK200, B404, NOT_PERMITTED, B404, B404),
    ),
    (
        "approve the active binding",
        "family",
        "POST",
        "/family/bindings/{B_ACTIVE}/approve",
        None,
        set(),
        ((409, "BINDING_NOT_PENDING"), NOT_PERMITTED, B404, B404, B404),
    ),
    (
        "end the active binding",
        "family",
        "DELETE",
        "/family/bindings/{B_ACTIVE}",
        None,
        set(),
        (OK200, OK200, B404, B404, B404),
    ),
    (
        "end the pending binding",
        "family",
        "DELETE",
        "/family/bindings/{B_PENDING}",
        None,
        set(),
        (OK200, B404, OK200, B404, B404),
    ),
    (
        "end the ended binding again",
        "family",
        "DELETE",
        "/family/bindings/{B_ENDED}",
        None,
        set(),
        (OK200, B404, B404, OK200, B404),
    ),
    (
        "bind the member",
        "family",
        "POST",
        "/family/bindings",
        "BIND_M",
        set(),
        ((422, "SELF_NOT_ALLOWED"), (409, "BINDING_EXISTS"), (409, "BINDING_EXISTS"), OK201, OK201),
    ),
    (
        "file mutual aid for the member",
        "family",
        "POST",
        "/family/mutual-aid-filings",
        {"member_psn_no": "{M}", "relationship": "parent"},
        set(),
        # The holder decides about their own account: no binding is needed to give.
        ((422, "SELF_NOT_ALLOWED"), OK201, OK201, OK201, OK201),
    ),
    ("list mutual-aid filings", "family", "GET", "/family/mutual-aid-filings", None, set(), (OK200,) * 5),
    (
        "withdraw the member's own filing",
        "family",
        "DELETE",
        "/family/mutual-aid-filings/{F_OWNER}",
        None,
        {"filing"},
        # The active binder is the filing's beneficiary: he may withdraw his consent too.
        (OK200, OK200, F404, F404, F404),
    ),
    # --- voucher --------------------------------------------------------------------------------
    ("show the member's code", "voucher", "POST", "/vouchers", {"on_behalf_of": "{M}"}, set(), ACTING_201),
    ("read the member's code usage", "voucher", "GET", "/vouchers/usage?psn_no={M}", None, set(), ACTING),
    ("revoke own codes", "voucher", "POST", "/vouchers/revocations", None, set(), (OK200,) * 5),
    # --- payments and accounts ------------------------------------------------------------------
    (
        "pay authorization for the member",
        "payments",
        "POST",
        "/pay-authorizations",
        {"purpose": "online_otc", "on_behalf_of": "{M}"},
        set(),
        ACTING_201,
    ),
    ("the member's balance", "payments", "GET", "/accounts/me?on_behalf_of={M}", None, set(), ACTING),
    ("the member's entries", "payments", "GET", "/accounts/me/entries?on_behalf_of={M}", None, set(), ACTING),
    ("own balance", "payments", "GET", "/accounts/me", None, set(), (OK200,) * 5),
    (
        "the member's own order",
        "payments",
        "GET",
        "/payment-orders/{O_OWN}",
        None,
        {"own_order"},
        (OK200, O404, O404, O404, O404),
    ),
    (
        "an order the binder placed for the member",
        "payments",
        "GET",
        "/payment-orders/{O_BINDER}",
        None,
        {"binder_order"},
        (OK200, OK200, O404, O404, O404),
    ),
]


def _fill(value: Any, refs: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**refs)
    if isinstance(value, dict):
        return {k: _fill(v, refs) for k, v in value.items()}
    return value


CELLS = [
    pytest.param(row, role, expected, id=f"{row[1]}: {row[0]} as {role}")
    for row in MATRIX
    for role, expected in zip(ROLES, row[6], strict=True)
]


@pytest.mark.parametrize(("row", "role", "expected"), CELLS)
def test_matrix(fam: Family, row, role, expected):
    _name, _domain, method, path, body, needs, _ = row
    world = build_world(fam, needs)
    if body == "BIND_M":
        m = world.people["owner"]
        body = {"member_id_number": m.id_number, "member_name": m.name, "relationship": "parent"}
    path, query = _fill(path, world.refs).partition("?")[::2]
    resp = fam.yb.as_user(world.people[role], method, path, _fill(body, world.refs), query_string=query)
    got = (
        resp.status_code,
        (resp.get_json(silent=True) or {}).get("code") if resp.status_code >= 400 else None,
    )
    assert got == expected, resp.get_data(as_text=True)[:400]
