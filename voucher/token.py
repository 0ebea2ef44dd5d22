"""The voucher token format: a standard compact JWS (EdDSA), and its compact QR form.

QR form: "YB1:" + base45(len(header) || header_json || payload_json || signature[64]).
Base45 (RFC 9285) uses exactly the QR alphanumeric alphabet, which packs 5.5 bits per character
instead of 8, so the same token needs a much smaller symbol than the base64url text. Any scanner turns
it back into b64url(header).b64url(payload).b64url(signature) and verifies that with a JOSE library:
the signature is over the standard JWS signing input.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
from dataclasses import dataclass
from typing import Any

QR_PREFIX = "YB1:"
ALG = "EdDSA"
TYP = "vc+jwt"  # explicit typing (RFC 8725 §3.11): never confused with an access token (at+jwt)
ISSUER = "yb"
AUDIENCE = "ec"  # the national e-voucher verification endpoint (ec.query)
SIG_LEN = 64
MAX_QR_CONTENT = 4096
HEADER_PARAMS = frozenset({"alg", "kid", "typ"})
KID_RE = re.compile(r"[A-Za-z0-9_-]{1,16}")
REF_RE = re.compile(r"[A-Za-z0-9_-]{6,16}")  # sub and jti

B45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_B45_VALUE = {ch: i for i, ch in enumerate(B45)}
# bytes.translate table: an ASCII byte to its base45 value, 255 for a byte outside the alphabet.
_B45_TABLE = bytes(_B45_VALUE.get(chr(i), 255) for i in range(256))
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class Malformed(ValueError):
    """The input is not a voucher token in either accepted form."""


def b45encode(data: bytes) -> str:
    """RFC 9285 base45."""
    out = []
    for i in range(0, len(data) - 1, 2):
        n = data[i] * 256 + data[i + 1]
        e, rest = divmod(n, 45 * 45)
        d, c = divmod(rest, 45)
        out += (B45[c], B45[d], B45[e])
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        out += (B45[c], B45[d])
    return "".join(out)


def b45decode(text: str) -> bytes:
    """Strict RFC 9285 decoding: unknown characters, a dangling character or overflow are Malformed.

    The characters become their values in one C-level translate (255 = not in the alphabet), and the
    triples are combined column-wise: every verification decodes a ~300-character code.
    """
    if len(text) % 3 == 1:
        raise Malformed("base45 length")
    try:
        values = text.encode("ascii").translate(_B45_TABLE)
    except UnicodeEncodeError as exc:
        raise Malformed("base45 alphabet") from exc
    if 255 in values:
        raise Malformed("base45 alphabet")
    full = len(values) - len(values) % 3
    columns = zip(values[0:full:3], values[1:full:3], values[2:full:3], strict=True)
    words = [a + b * 45 + c * 2025 for a, b, c in columns]
    if words and max(words) > 0xFFFF:
        raise Malformed("base45 overflow")
    out = struct.pack(f">{len(words)}H", *words)
    if full < len(values):
        n = values[full] + values[full + 1] * 45
        if n > 0xFF:
            raise Malformed("base45 overflow")
        out += bytes((n,))
    return out


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_decode(text: str) -> bytes:
    """Strict unpadded base64url: canonical encodings only, so one token has one spelling."""
    if len(text) % 4 == 1 or not _B64URL.fullmatch(text):
        raise Malformed("base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise Malformed("base64url") from exc
    if b64u(data) != text:
        raise Malformed("non-canonical base64url")
    return data


def dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for k, v in pairs:
        if k in obj:
            raise Malformed("duplicate member")
        obj[k] = v
    return obj


def _reject_constant(name: str) -> Any:
    raise Malformed(f"non-standard JSON constant {name}")


def loads_object(raw: bytes) -> dict[str, Any]:
    """A JSON object with no duplicate members and no NaN/Infinity."""
    try:
        obj = json.loads(
            raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_reject_constant
        )
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise Malformed("json") from exc
    if not isinstance(obj, dict):
        raise Malformed("not an object")
    return obj


@dataclass(frozen=True)
class Parts:
    """The three JWS parts as bytes, whichever form they arrived in."""

    header_raw: bytes
    payload_raw: bytes
    signature: bytes

    @property
    def signing_input(self) -> bytes:
        return (b64u(self.header_raw) + "." + b64u(self.payload_raw)).encode()

    @property
    def compact(self) -> str:
        return f"{b64u(self.header_raw)}.{b64u(self.payload_raw)}.{b64u(self.signature)}"

    @property
    def qr_content(self) -> str:
        if len(self.header_raw) > 255:
            raise Malformed("header too long for the QR form")
        blob = bytes([len(self.header_raw)]) + self.header_raw + self.payload_raw + self.signature
        return QR_PREFIX + b45encode(blob)


def split(content: str) -> Parts:
    """Normalise the QR form or the compact form into Parts; anything else is Malformed."""
    if not isinstance(content, str) or not content or len(content) > MAX_QR_CONTENT:
        raise Malformed("size")
    if content.startswith(QR_PREFIX):
        blob = b45decode(content[len(QR_PREFIX) :])
        if len(blob) < 1 + 2 + 2 + SIG_LEN:
            raise Malformed("too short")
        hlen = blob[0]
        if hlen < 2 or 1 + hlen + 2 + SIG_LEN > len(blob):
            raise Malformed("header length")
        return Parts(blob[1 : 1 + hlen], blob[1 + hlen : -SIG_LEN], blob[-SIG_LEN:])
    pieces = content.split(".")
    if len(pieces) != 3 or not all(pieces):
        raise Malformed("not three parts")
    return Parts(b64u_decode(pieces[0]), b64u_decode(pieces[1]), b64u_decode(pieces[2]))
