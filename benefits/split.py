"""The hospital split (一站式结算): how a bill is paid by the pooled fund, serious-illness insurance, medical
assistance, the personal account, family mutual aid and cash. Pure integer-fen arithmetic, no I/O, no Flask.

The rules are those of DESIGN.md ("Hospital settlement", the split, steps 1-6), in that order:
1. lines: A all in range; B preselfpay = amount x class_b_self_pay_pct / 100 half up per line, rest in range;
   C all ownpay. inscp = the sum in range.
2. deductible: deductible_fen[level] when it applies (the caller decides: outpatient once per Beijing day per
   institution, inpatient every admission), never more than inscp.
3. hifp = floor((inscp - deductible) x min(100, ratio_pct[level] + retired_extra_pct if retired) / 100),
   at most what is left of that med_type's annual cap.
4. hifmi (inpatient only) on the cumulative inpatient shares (share = inscp - hifp) above threshold_fen.
5. maf = floor((inscp - hifp - hifmi) x ratio_pct / 100) for a listed assistance category, capped yearly.
6. fund_pay = hifp + hifmi + maf; the rest from the personal account up to its balance, then mutual aid
   (holders in order), then cash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .policy import MedTypePolicy, Policy

MED_TYPES = ("outpatient", "inpatient")
CATEGORIES = ("A", "B", "C")
LEVELS = ("primary", "secondary", "tertiary")
ASSISTANCE_CATEGORIES = ("none", "dibao", "tekun", "low_income")
MAX_FEN = 2**53 - 1  # the v1 totals limit (payments.money.MAX_FEN)


class AmountTooLarge(ValueError):
    """A line or the total exceeds MAX_FEN."""


@dataclass(frozen=True)
class Line:
    category: str  # A | B | C
    quantity: int
    unit_price_fen: int


@dataclass(frozen=True)
class Person:
    retired: bool = False
    assistance_category: str = "none"


@dataclass(frozen=True)
class Totals:
    """A person's running totals for one year before this settlement (all fen)."""

    hifp_outpatient_fen: int = 0
    hifp_inpatient_fen: int = 0
    hifmi_fen: int = 0
    maf_fen: int = 0
    inpatient_share_fen: int = 0

    def hifp_fen(self, med_type: str) -> int:
        return self.hifp_outpatient_fen if med_type == "outpatient" else self.hifp_inpatient_fen

    def plus(self, s: Split) -> Totals:
        """The totals after counting settlement `s`."""
        return Totals(**{k: getattr(self, k) + v for k, v in s.counted().items()})

    def minus(self, counted: Mapping[str, int]) -> Totals:
        """The totals after a refund gave back what its order counted."""
        return Totals(**{k: getattr(self, k) - counted.get(k, 0) for k in TOTAL_FIELDS})


# The split's fields as the contract names them (DESIGN.md v2), in order.
FIELDS = (
    "med_type",
    "inscp_fen",
    "preselfpay_fen",
    "ownpay_fen",
    "deductible_fen",
    "hifp_pay_fen",
    "hifmi_pay_fen",
    "maf_pay_fen",
    "fund_pay_fen",
    "account_pay_fen",
    "mutual_aid_pay_fen",
    "cash_pay_fen",
    "total_fen",
    "policy_version",
)
TOTAL_FIELDS = ("hifp_outpatient_fen", "hifp_inpatient_fen", "hifmi_fen", "maf_fen", "inpatient_share_fen")


@dataclass(frozen=True)
class Split:
    med_type: str
    inscp_fen: int
    preselfpay_fen: int
    ownpay_fen: int
    deductible_fen: int
    hifp_pay_fen: int
    hifmi_pay_fen: int
    maf_pay_fen: int
    fund_pay_fen: int
    account_pay_fen: int
    mutual_aid_pay_fen: int
    cash_pay_fen: int
    total_fen: int
    policy_version: int
    mutual_aid: tuple[tuple[int, int], ...] = field(default=())  # (holder key, fen) in charge order
    inpatient_share_fen: int = 0  # inscp - hifp of an inpatient order (what it adds to the cumulative shares)

    def counted(self) -> dict[str, int]:
        """What this settlement adds to the year's running totals (a refund gives back exactly this)."""
        return {
            "hifp_outpatient_fen": self.hifp_pay_fen if self.med_type == "outpatient" else 0,
            "hifp_inpatient_fen": self.hifp_pay_fen if self.med_type == "inpatient" else 0,
            "hifmi_fen": self.hifmi_pay_fen,
            "maf_fen": self.maf_pay_fen,
            "inpatient_share_fen": self.inpatient_share_fen,
        }

    def fields(self) -> dict[str, object]:
        """The contract's fields (DESIGN.md), in order."""
        return {k: getattr(self, k) for k in FIELDS}


def half_up_pct(amount: int, pct: int) -> int:
    """amount x pct / 100 rounded half up (amount, pct >= 0)."""
    return (amount * pct * 2 + 100) // 200


def floor_pct(amount: int, pct: int) -> int:
    return amount * pct // 100


def classify(lines: Sequence[Line], class_b_self_pay_pct: int) -> tuple[int, int, int, int]:
    """(total, inscp, preselfpay, ownpay) of the lines (step 1). AmountTooLarge past MAX_FEN."""
    total = inscp = pre = own = 0
    for line in lines:
        if line.category not in CATEGORIES:
            raise ValueError(f"unknown category {line.category!r}")
        if line.quantity <= 0 or line.unit_price_fen < 0:
            raise ValueError("quantity must be > 0 and unit price >= 0")
        amount = line.quantity * line.unit_price_fen
        total += amount
        if total > MAX_FEN:
            raise AmountTooLarge(total)
        if line.category == "A":
            inscp += amount
        elif line.category == "B":
            self_pay = half_up_pct(amount, class_b_self_pay_pct)
            pre += self_pay
            inscp += amount - self_pay
        else:
            own += amount
    return total, inscp, pre, own


def _left(cap: int, used: int) -> int:
    return max(0, cap - used)


def compute(
    policy: Policy,
    *,
    med_type: str,
    level: str,
    person: Person,
    lines: Sequence[Line],
    totals: Totals,
    deductible_applies: bool,
    account_balance_fen: int = 0,
    holder_balances: Sequence[tuple[int, int]] = (),
) -> Split:
    """The split of one bill (DESIGN.md steps 1-6). `deductible_applies`: for an outpatient order, whether the
    person has no other paid, unrefunded outpatient order at this institution on this Beijing day; ignored for
    inpatient orders (every admission pays it). Raises ValueError on bad input, AmountTooLarge past MAX_FEN.
    """
    if med_type not in MED_TYPES:
        raise ValueError(f"unknown med_type {med_type!r}")
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}")
    mp: MedTypePolicy = policy.med(med_type)
    total, inscp, pre, own = classify(lines, policy.class_b_self_pay_pct)

    # 2. deductible
    applies = deductible_applies or med_type == "inpatient"
    deductible = min(inscp, mp.deductible_fen[level]) if applies else 0

    # 3. pooled fund
    ratio = min(100, mp.ratio_pct[level] + (mp.retired_extra_pct if person.retired else 0))
    hifp = floor_pct(inscp - deductible, ratio)
    hifp = min(hifp, _left(mp.annual_cap_fen, totals.hifp_fen(med_type)))

    # 4. serious illness (inpatient only), on cumulative shares above the threshold
    hifmi = share = 0
    if med_type == "inpatient":
        si = policy.serious_illness
        share = inscp - hifp
        before = totals.inpatient_share_fen
        above = max(0, before + share - si.threshold_fen) - max(0, before - si.threshold_fen)
        hifmi = min(floor_pct(above, si.ratio_pct), _left(si.annual_cap_fen, totals.hifmi_fen))

    # 5. medical assistance, one cap for both med_types
    maf = 0
    aid = policy.assistance.get(person.assistance_category)
    if aid is not None:
        maf = min(floor_pct(inscp - hifp - hifmi, aid.ratio_pct), _left(aid.annual_cap_fen, totals.maf_fen))

    # 6. the person's part
    fund = hifp + hifmi + maf
    rest = total - fund
    account = min(rest, max(account_balance_fen, 0))
    rest -= account
    mutual: list[tuple[int, int]] = []
    for key, balance in holder_balances:
        if rest == 0:
            break
        take = min(rest, max(balance, 0))
        if take:
            mutual.append((key, take))
            rest -= take
    return Split(
        med_type=med_type,
        inscp_fen=inscp,
        preselfpay_fen=pre,
        ownpay_fen=own,
        deductible_fen=deductible,
        hifp_pay_fen=hifp,
        hifmi_pay_fen=hifmi,
        maf_pay_fen=maf,
        fund_pay_fen=fund,
        account_pay_fen=account,
        mutual_aid_pay_fen=sum(f for _, f in mutual),
        cash_pay_fen=rest,
        total_fen=total,
        policy_version=policy.version,
        mutual_aid=tuple(mutual),
        inpatient_share_fen=share,
    )
