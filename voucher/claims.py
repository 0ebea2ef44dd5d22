"""What a voucher's header and claims must be: lifetime, clock leeway, the jti, and the checks that
need no database (form, allow-listed alg, our key, signature, typ/iss/aud, time).

Time claims: `iat` and `exp` are required integers; the lifetime exp - iat is at most MAX_TTL.
`nbf` is optional: issued codes carry none, but a code that has one is held to it. It must be an
integer (else VOUCHER_MALFORMED), and a code whose nbf is more than LEEWAY seconds in the future is
refused exactly like an iat too far ahead: VOUCHER_SIGNATURE_INVALID, before the single-use step,
so the code is not consumed.
"""

from __future__ import annotations

import secrets
from typing import Any

from cryptography.exceptions import InvalidSignature

from . import token as tk
from .errors import Refusal
from .keys import KeyRing

MAX_TTL = 300  # the issue's ceiling; key retirement is computed from it
LEEWAY = 5  # clock skew tolerated on iat, nbf and exp

_B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def new_jti(millis: int) -> str:
    """8 characters: the millisecond of the issue second (2 chars) and 36 random bits (6 chars).

    jti only has to be unique per subject (single use is keyed by sub and jti), and the millisecond
    lets revocation be exact without a larger iat.
    """
    return _B64URL_ALPHABET[millis // 64] + _B64URL_ALPHABET[millis % 64] + secrets.token_urlsafe(5)[:6]


def issued_ms(iat: int, jti: str) -> int | None:
    """The issue instant in ms encoded by new_jti, or None when jti does not carry one."""
    hi, lo = _B64URL_ALPHABET.find(jti[0]), _B64URL_ALPHABET.find(jti[1])
    millis = hi * 64 + lo
    if hi < 0 or lo < 0 or millis > 999:
        return None
    return iat * 1000 + millis


def checked_claims(keyring: KeyRing, content: Any, now: float) -> dict[str, Any]:
    """The claims of a code that passes every check needing no database (README, verification order).

    Raises Refusal with VOUCHER_MALFORMED (form, header members, claims missing or mistyped),
    VOUCHER_SIGNATURE_INVALID (alg, kid, signature, typ, iss, aud, iat or nbf too far ahead,
    lifetime) or VOUCHER_EXPIRED (exp, with LEEWAY).
    """
    try:
        parts = tk.split(content)
        header = tk.loads_object(parts.header_raw)
    except tk.Malformed as exc:
        raise Refusal("VOUCHER_MALFORMED") from exc
    if header.get("alg") != tk.ALG:  # allow-list: "none", HS256 and everything else stop here
        raise Refusal("VOUCHER_SIGNATURE_INVALID")
    kid = header.get("kid")
    if not set(header) <= tk.HEADER_PARAMS or not isinstance(kid, str) or not tk.KID_RE.fullmatch(kid):
        raise Refusal("VOUCHER_MALFORMED")
    public = keyring.public_key(kid)  # our own key set only; nothing in the token names a key URL
    if public is None or len(parts.signature) != tk.SIG_LEN:
        raise Refusal("VOUCHER_SIGNATURE_INVALID")
    try:
        public.verify(parts.signature, parts.signing_input)
    except InvalidSignature as exc:
        raise Refusal("VOUCHER_SIGNATURE_INVALID") from exc
    if header.get("typ") != tk.TYP:
        raise Refusal("VOUCHER_SIGNATURE_INVALID")
    try:
        claims = tk.loads_object(parts.payload_raw)
    except tk.Malformed as exc:
        raise Refusal("VOUCHER_MALFORMED") from exc
    if claims.get("iss") != tk.ISSUER or claims.get("aud") != tk.AUDIENCE:
        raise Refusal("VOUCHER_SIGNATURE_INVALID")
    iat, exp = claims.get("iat"), claims.get("exp")
    nbf = claims.get("nbf", iat)  # optional; issued codes carry none
    if not all(type(v) is int for v in (iat, exp, nbf)) or not all(
        isinstance(claims.get(k), str) and tk.REF_RE.fullmatch(claims[k]) for k in ("sub", "jti")
    ):
        raise Refusal("VOUCHER_MALFORMED")
    act = claims.get("act")
    if act is not None and not (
        isinstance(act, dict) and set(act) == {"sub"} and isinstance(act["sub"], str)
    ):
        raise Refusal("VOUCHER_MALFORMED")
    if iat > now + LEEWAY or nbf > now + LEEWAY or exp <= iat or exp - iat > MAX_TTL:
        raise Refusal("VOUCHER_SIGNATURE_INVALID")
    if exp + LEEWAY <= now:
        raise Refusal("VOUCHER_EXPIRED")
    return claims
