"""Money arithmetic in integer fen: order totals, payment splits and refund allocation. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# JSON numbers are IEEE doubles in most clients: beyond 2^53 they silently lose fen.
MAX_FEN = 2**53 - 1


class AmountTooLarge(ValueError):
    """A total or amount exceeds MAX_FEN."""


def check_amount(value: int) -> int:
    """Refuse negative amounts and amounts beyond MAX_FEN."""
    if value < 0:
        raise ValueError("negative amount")
    if value > MAX_FEN:
        raise AmountTooLarge(value)
    return value


def order_total(lines: Sequence[tuple[int, int]], delivery_fee_fen: int) -> tuple[int, int]:
    """(drug_fen, total_fen) of (quantity, unit_price_fen) lines plus delivery; AmountTooLarge past 2^53."""
    drug = 0
    for quantity, unit_price in lines:
        if quantity <= 0 or unit_price < 0:
            raise ValueError("quantity must be > 0 and unit price >= 0")
        drug += quantity * unit_price
        check_amount(drug)  # early: never build huge intermediates from hostile input
    check_amount(delivery_fee_fen)
    return drug, check_amount(drug + delivery_fee_fen)


@dataclass(frozen=True)
class Split:
    """How a total is paid: own account, family mutual-aid accounts (per holder), cash."""

    account_fen: int
    mutual_aid: tuple[tuple[int, int], ...]  # (holder key, fen) in charge order
    cash_fen: int

    @property
    def mutual_aid_fen(self) -> int:
        return sum(f for _, f in self.mutual_aid)

    @property
    def total_fen(self) -> int:
        return self.account_fen + self.mutual_aid_fen + self.cash_fen


def split_payment(
    *, drug_fen: int, delivery_fee_fen: int, own_balance: int, holder_balances: Sequence[tuple[int, int]] = ()
) -> Split:
    """Drugs from the own account first, then mutual-aid holders in order; delivery and the rest in cash."""
    check_amount(drug_fen)
    check_amount(delivery_fee_fen)
    own = min(drug_fen, max(own_balance, 0))
    rest = drug_fen - own
    aid: list[tuple[int, int]] = []
    for key, balance in holder_balances:
        if rest == 0:
            break
        take = min(rest, max(balance, 0))
        if take:
            aid.append((key, take))
            rest -= take
    return Split(own, tuple(aid), rest + delivery_fee_fen)


@dataclass(frozen=True)
class RefundSplit:
    """How a refund is returned: per mutual-aid holder, own account, cash."""

    account_fen: int
    mutual_aid: tuple[tuple[int, int], ...]
    cash_fen: int

    @property
    def mutual_aid_fen(self) -> int:
        return sum(f for _, f in self.mutual_aid)

    @property
    def total_fen(self) -> int:
        return self.account_fen + self.mutual_aid_fen + self.cash_fen


def split_refund(
    amount_fen: int,
    *,
    account_left: int,
    mutual_aid_left: Sequence[tuple[int, int]],
    cash_left: int,
) -> RefundSplit:
    """Insurance money first (mutual aid in reverse charge order, then the own account), cash last.

    `*_left` are what each source paid minus what was already refunded to it; the refund never
    returns more to a source than it paid. Raises ValueError when amount exceeds everything left.
    """
    check_amount(amount_fen)
    if amount_fen > account_left + sum(f for _, f in mutual_aid_left) + cash_left:
        raise ValueError("refund exceeds paid")
    rest = amount_fen
    aid: list[tuple[int, int]] = []
    for key, left in reversed(list(mutual_aid_left)):
        take = min(rest, left)
        if take:
            aid.append((key, take))
            rest -= take
    own = min(rest, account_left)
    rest -= own
    cash = min(rest, cash_left)
    rest -= cash
    assert rest == 0
    return RefundSplit(own, tuple(aid), cash)
