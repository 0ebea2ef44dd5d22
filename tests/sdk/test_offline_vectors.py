"""YO1 test vectors (computed once with openssl dgst -hmac and base32): the SDK generator, an
independent one written from the contract, and the table in docs/voucher.md all agree."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from pathlib import Path

import pytest

from yibao_client import offline

DOCS = Path(__file__).resolve().parents[2] / "docs" / "voucher.md"
K00 = "AAAQEAYEAUDAOCAJBIFQYDIOB4IBCEQTCQKRMFYYDENBWHA5DYPQ"  # bytes 0x00..0x1f
KFF = "777777777777777777777777777777777777777777777777777Q"  # 32 x 0xff
KR = "T4WE4GT3HVPWBINSYPKOL5QHDAUTUS24NV7I7EFBWLB5JZPWA4MA"

# (secret, credential_id, unix time, seq, code)
VECTORS = [
    (K00, "cred-TEST_0001", 1767225600, 0, "YO1:cred-TEST_0001:58907520:0:FGTUE4IUQJNFNKCD"),
    (K00, "cred-TEST_0001", 1767225629, 15, "YO1:cred-TEST_0001:58907520:15:6CKBJRBDD6CIZ65M"),
    (K00, "cred-TEST_0001", 1767225630, 0, "YO1:cred-TEST_0001:58907521:0:6TZPYP6MUGVYLP7R"),
    (KFF, "A", 0, 0, "YO1:A:0:0:LDYUG7L65VR55FRV"),
    (
        KR,
        "Zz09_-abcdefghijklmnopqrstuvwxyz",
        2000000000,
        7,
        "YO1:Zz09_-abcdefghijklmnopqrstuvwxyz:66666666:7:RLR3NXQAABBZKJUB",
    ),
]


def _contract_generator(secret: str, credential_id: str, unix_time: int, seq: int) -> str:
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    text = f"YO1:{credential_id}:{unix_time // 30}:{seq}"
    return text + ":" + base64.b32encode(hmac.new(key, text.encode(), hashlib.sha256).digest()[:10]).decode()


@pytest.mark.parametrize(("secret", "cid", "at", "seq", "code"), VECTORS)
def test_sdk_generator_reproduces_the_vectors(secret, cid, at, seq, code):
    assert offline.Credential(cid, secret).code(at=at, seq=seq) == code
    assert offline.make_code(cid, secret, step=offline.step_at(at), seq=seq) == code
    assert _contract_generator(secret, cid, at, seq) == code


def test_the_docs_table_is_the_tests_vectors():
    rows = re.findall(
        r"^\| `([A-Z2-7]{52})` \| `([A-Za-z0-9_-]+)` \| (\d+) \| (\d+) \| `(YO1:[^`]+)` \|$",
        DOCS.read_text(),
        re.MULTILINE,
    )
    assert [(s, c, int(t), int(q), code) for s, c, t, q, code in rows] == VECTORS


def test_secret_is_32_bytes():
    assert offline.decode_secret(K00) == bytes(range(32))
    assert offline.decode_secret(KFF) == b"\xff" * 32


@pytest.mark.parametrize(
    ("cid", "secret", "step", "seq"),
    [
        ("", K00, 1, 0),
        ("a" * 33, K00, 1, 0),
        ("a:b", K00, 1, 0),
        ("A", K00.lower(), 1, 0),
        ("A", K00 + "====", 1, 0),
        ("A", K00[:-1], 1, 0),
        ("A", K00, -1, 0),
        ("A", K00, 1, 16),
        ("A", K00, 1, -1),
        ("A", K00, True, 0),
    ],
)
def test_bad_arguments_are_refused(cid, secret, step, seq):
    with pytest.raises(ValueError):  # noqa: PT011
        offline.make_code(cid, secret, step=step, seq=seq)
