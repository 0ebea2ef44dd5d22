"""Drug traceability codes: the 20-digit Chinese code, or a GS1 element string naming one box.

A box may be settled once in the whole system, so every notation of the same box must give the same
settlement key: the GS1 fields are parsed (human-readable "(01)…(21)…" or raw with FNC1/GS separators),
and the key is the GTIN plus the serial number, whatever other fields (expiry, batch) are present and
in whatever order.
"""

from __future__ import annotations

import re

TRACE_20 = re.compile(r"\d{20}")
GS = "\x1d"
MAX_LEN = 96

# Application identifiers a drug box carries, with their value lengths (GS1 General Specifications).
_FIXED = {"00": 18, "01": 14, "02": 14, "11": 6, "12": 6, "13": 6, "15": 6, "16": 6, "17": 6, "20": 2}
_VARIABLE = {
    "10": 20,  # batch/lot
    "21": 20,  # serial number
    "22": 20,
    "30": 8,
    "37": 8,
    "240": 30,
    "241": 30,
    "250": 30,
    "251": 30,
    "254": 20,
    "710": 20,  # national healthcare reimbursement numbers (710-715)
    "711": 20,
    "712": 20,
    "713": 20,
    "714": 20,
    "715": 20,
    "90": 30,
    **{str(n): 90 for n in range(91, 100)},  # company internal
}
_MEASURE = re.compile(r"3[1-6]\d\d")  # 31nn-36nn: trade measures, 6 digits
# GS1 AI encodable character set 82 (no parentheses: they delimit AIs in the human-readable form).
_VALUE = re.compile(r"[!\"%&'*+,\-./0-9:;<=>?A-Z_a-z]+")
_HRI = re.compile(r"\((\d{2,4})\)([^()]*)")


def _ai_at(code: str, pos: int) -> tuple[str, int | None, int] | None:
    """(ai, fixed length or None, max length) of the AI starting at pos in the raw form."""
    two, three, four = code[pos : pos + 2], code[pos : pos + 3], code[pos : pos + 4]
    if two in _FIXED:
        return two, _FIXED[two], _FIXED[two]
    if two in _VARIABLE:
        return two, None, _VARIABLE[two]
    if three in _VARIABLE:
        return three, None, _VARIABLE[three]
    if _MEASURE.fullmatch(four):
        return four, 6, 6
    return None


def _parse_raw(code: str) -> list[tuple[str, str]] | None:
    fields, pos = [], 0
    while pos < len(code):
        spec = _ai_at(code, pos)
        if spec is None:
            return None
        ai, fixed, longest = spec
        pos += len(ai)
        if fixed is not None:
            value = code[pos : pos + fixed]
            pos += fixed
            if len(value) != fixed:
                return None
        else:
            end = code.find(GS, pos)
            end = len(code) if end < 0 else end
            value, pos = code[pos:end], end
            if not 1 <= len(value) <= longest:
                return None
        fields.append((ai, value))
        if code.startswith(GS, pos):  # separator after a variable field (tolerated after a fixed one)
            pos += 1
    return fields


def _parse_hri(code: str) -> list[tuple[str, str]] | None:
    fields, pos = [], 0
    for m in _HRI.finditer(code):
        if m.start() != pos:
            return None
        ai, value = m.groups()
        spec = _ai_at(ai + "0" * 6, 0)
        if spec is None or spec[0] != ai:
            return None
        _, fixed, longest = spec
        if (fixed is not None and len(value) != fixed) or not 1 <= len(value) <= longest:
            return None
        fields.append((ai, value))
        pos = m.end()
    return fields if pos == len(code) else None


def parse_gs1(code: str) -> dict[str, str] | None:
    """The fields of a GS1 element string that names one box (AI 01 first, a serial 21), or None."""
    fields = _parse_hri(code) if code.startswith("(") else _parse_raw(code)
    if not fields or fields[0][0] != "01":
        return None
    parsed = dict(fields)
    if len(parsed) != len(fields):  # an AI twice
        return None
    if not parsed["01"].isdigit() or "21" not in parsed:  # no serial: a product or a lot, not one box
        return None
    if not all(_VALUE.fullmatch(v) for v in parsed.values()):
        return None
    for ai, value in parsed.items():
        if (ai in _FIXED or _MEASURE.fullmatch(ai)) and not value.isdigit():
            return None
    return parsed


def settlement_key(code: object) -> str | None:
    """The box's key for "settled once" (same for every notation of the box), or None if malformed."""
    if not isinstance(code, str) or not code or len(code) > MAX_LEN:
        return None
    if TRACE_20.fullmatch(code):
        return code
    fields = parse_gs1(code)
    if fields is None:
        return None
    return f"01{fields['01']}21{fields['21']}"


def valid_trace_code(code: object) -> bool:
    """20 digits (Chinese drug traceability code) or a GS1 element string naming one box."""
    return settlement_key(code) is not None
