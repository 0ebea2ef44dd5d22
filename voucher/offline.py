"""YO1 codes, made offline on the phone: the shape, the MAC, and the checks before single use.

    YO1:{credential_id}:{step}:{seq}:{mac}

step = floor(unix time / 30), seq = 0..15 (refreshes within a step), both canonical decimal; mac =
upper-case unpadded base32 of the first 10 bytes (80 bits) of HMAC-SHA256(key, UTF-8
"YO1:{credential_id}:{step}:{seq}"), key = the 32 bytes the credential's secret decodes to.

The checks, in the contract's order (docs/voucher.md, "Offline codes"): shape (VOUCHER_MALFORMED),
credential known (VOUCHER_SIGNATURE_INVALID), credential active (VOUCHER_REVOKED), MAC in constant
time (VOUCHER_SIGNATURE_INVALID), |step - floor(now / 30)| <= 1 (VOUCHER_EXPIRED). Single use and the
v1 rules that follow are verification.decide's, shared with signed codes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select

from supervision import checks as supervision
from yibao import crypto
from yibao.db import UnitOfWork
from yibao.prepared import Prepared
from yibao.registry.models import Person

from .errors import Refusal
from .models import OfflineCredential
from .queries import SCANNED_PERSON_COLUMNS

PREFIX = "YO1:"
PERIOD_S = 30
MAX_SEQ = 15
STEP_WINDOW = 1  # steps either side of the server's
ENCRYPTION_PURPOSE = "voucher/offline-credential"
# Canonical decimals only (no sign, no leading zero), ASCII classes only: NUL, non-ASCII digits,
# lower-case base32 and trailing newlines never match (fullmatch).
_SHAPE = re.compile(
    r"YO1:(?P<cid>[A-Za-z0-9_-]{1,32}):(?P<step>0|[1-9][0-9]{0,11}):(?P<seq>[0-9]|1[0-5]):(?P<mac>[A-Z2-7]{16})"
)
MAX_LENGTH = 4 + 32 + 1 + 12 + 1 + 2 + 1 + 16

# The credential and the columns of its person that the checks and the answer use (those of
# queries.PERSON_BY_SUB for signed codes): no ORM entity on the scan path. Then supervision's rules
# version (for check_scan: no round trip of its own).
CREDENTIAL_WITH_PERSON = Prepared(
    select(
        OfflineCredential.secret_enc,
        OfflineCredential.ended_at,
        OfflineCredential.ended_reason,
        *SCANNED_PERSON_COLUMNS,
        supervision.rules_version_column(),
    )
    .join(Person, Person.id == OfflineCredential.person_id)
    .where(OfflineCredential.id == bindparam("cid")),
    ("cid",),
)


def is_offline(content: Any) -> bool:
    """Whether the scanned content claims to be a YO1 code (everything else is a signed code)."""
    return isinstance(content, str) and content.startswith(PREFIX)


def mac(key: bytes, credential_id: str, step: int, seq: int) -> str:
    """The 16-character MAC of a code (upper-case base32 without padding of 10 bytes)."""
    msg = f"{PREFIX}{credential_id}:{step}:{seq}".encode()
    return base64.b32encode(hmac.new(key, msg, hashlib.sha256).digest()[:10]).decode()


def decode_secret(secret: str) -> bytes:
    """The 32-byte key of a 52-character base32 secret."""
    return base64.b32decode(secret + "=" * (-len(secret) % 8))


@dataclass(frozen=True)
class OfflineCode:
    credential_id: str
    step: int
    seq: int
    mac: str

    @property
    def use_id(self) -> str:
        """The single-use key within the credential (stored as the jti)."""
        return f"{self.step}:{self.seq}"

    @property
    def exp(self) -> int:
        """The unix second after which no server clock accepts this step (the replay keys' end)."""
        return (self.step + STEP_WINDOW + 1) * PERIOD_S


def parse(content: str) -> OfflineCode:
    """Raises Refusal VOUCHER_MALFORMED unless the content has the exact YO1 shape."""
    m = _SHAPE.fullmatch(content) if len(content) <= MAX_LENGTH else None
    if m is None:
        raise Refusal("VOUCHER_MALFORMED")
    return OfflineCode(m["cid"], int(m["step"]), int(m["seq"]), m["mac"])


class ScannedPerson(NamedTuple):
    """The person of a scanned YO1 code: the columns of CREDENTIAL_WITH_PERSON after the credential's."""

    id: int
    psn_no: str
    status: str
    insurance_type: str
    insured_region: str
    name_masked: str
    id_number_masked: str


@dataclass(frozen=True)
class CheckedOffline:
    """A YO1 code past the MAC and the time window: whose it is, and what single use keys on."""

    person: ScannedPerson
    suspended: bool
    code: OfflineCode


def checked(uow: UnitOfWork, content: str, now: float, audit: Any) -> CheckedOffline:
    """The YO1 checks up to (not including) single use, in the contract's order.

    `audit` (verification's decision) gets kind, and once the credential is known, its person, id and
    supervision's rules version (read with the credential), so that refusals from there on (MAC
    failures included) are audited against the credential.

    A credential ended by the person's suspension is let through while the person is suspended, so
    the scan is consumed and answered PERSON_SUSPENDED, as signed codes are; once active again, it is
    VOUCHER_REVOKED.

    Raises Refusal: VOUCHER_MALFORMED, VOUCHER_SIGNATURE_INVALID (unknown credential, wrong MAC),
    VOUCHER_REVOKED (credential ended), VOUCHER_EXPIRED (step outside the window).
    """
    audit.kind = "offline"
    code = parse(content)
    row = CREDENTIAL_WITH_PERSON.first(uow, {"cid": code.credential_id})
    if row is None:
        raise Refusal("VOUCHER_SIGNATURE_INVALID")
    secret_enc, ended_at, ended_reason = row[:3]
    person = ScannedPerson(*row[3 : 3 + len(SCANNED_PERSON_COLUMNS)])
    audit.rules_version = row.rules_version
    audit.person_id, audit.credential_id, audit.jti = person.id, code.credential_id, code.use_id
    suspended = person.status != "active"
    if ended_at is not None and not (suspended and ended_reason == "suspended"):
        raise Refusal("VOUCHER_REVOKED")
    key = decode_secret(crypto.decrypt(secret_enc, purpose=ENCRYPTION_PURPOSE, aad=code.credential_id))
    if not hmac.compare_digest(mac(key, code.credential_id, code.step, code.seq), code.mac):
        raise Refusal("VOUCHER_SIGNATURE_INVALID")
    if abs(code.step - int(now // PERIOD_S)) > STEP_WINDOW:
        raise Refusal("VOUCHER_EXPIRED")
    return CheckedOffline(person, suspended, code)
