"""Offline codes (YO1): what the phone computes with no network, from its offline credential.

    from yibao_client import offline
    cred = offline.Credential(credential_id, secret)   # from POST /api/v1/offline-credentials
    cred.code()                  # now, seq 0: "YO1:{credential_id}:{step}:{seq}:{mac}"
    cred.code(at=1767225600, seq=3)

step = floor(unix time / 30); seq = 0..15 (a new code within the same step); mac = upper-case
base32 without padding of the first 10 bytes of HMAC-SHA256(key, UTF-8 "YO1:{credential_id}:
{step}:{seq}"), key = the 32 bytes the secret (52 base32 characters) decodes to. Standard library
only. Each code is single use: show seq 0, then 1, … when the user refreshes within 30 seconds.
The test vectors are in docs/voucher.md ("Offline codes").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass

FORMAT = "YO1"
PERIOD_S = 30
MAX_SEQ = 15
_CREDENTIAL_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_SECRET = re.compile(r"[A-Z2-7]{52}")


def decode_secret(secret: str) -> bytes:
    """The 32-byte key of a credential's secret (upper-case base32, no padding, 52 characters)."""
    if not _SECRET.fullmatch(secret):
        raise ValueError("secret: 52 characters of upper-case base32 expected")
    return base64.b32decode(secret + "====")


def step_at(unix_time: float) -> int:
    return int(unix_time // PERIOD_S)


def make_code(credential_id: str, secret: str, *, step: int, seq: int = 0) -> str:
    """The YO1 code of this credential for one step and seq."""
    if not _CREDENTIAL_ID.fullmatch(credential_id):
        raise ValueError("credential_id: 1-32 characters of [A-Za-z0-9_-]")
    if type(step) is not int or step < 0:
        raise ValueError("step: a non-negative integer")
    if type(seq) is not int or not 0 <= seq <= MAX_SEQ:
        raise ValueError(f"seq: 0..{MAX_SEQ}")
    text = f"{FORMAT}:{credential_id}:{step}:{seq}"
    digest = hmac.new(decode_secret(secret), text.encode("utf-8"), hashlib.sha256).digest()
    return f"{text}:{base64.b32encode(digest[:10]).decode('ascii')}"


@dataclass(frozen=True)
class Credential:
    """An offline credential as the phone keeps it (store the secret in the platform's key store)."""

    credential_id: str
    secret: str

    def code(self, *, at: float | None = None, seq: int = 0) -> str:
        """The code for unix time `at` (default now) and refresh number `seq`."""
        return make_code(
            self.credential_id, self.secret, step=step_at(time.time() if at is None else at), seq=seq
        )
