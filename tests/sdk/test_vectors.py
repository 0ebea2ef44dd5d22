"""Published test vectors: computed once with openssl (as the README's yb_sign does), written here as
literals and in docs/sdk.md. The SDK must reproduce them, the docs' tables must equal them, and the
server's own verifier must accept them."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from yibao_client import signing, webhooks

DOCS = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"

KEY_ID = "ak_test_vectors_01"
SECRET = "yb_test_secret_7f3c9a1e5b2d4680"
TIMESTAMP = 1767225600  # 2026-01-01T00:00:00Z
NONCE = "0123456789abcdef01234567"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
ORDER_BODY = (
    '{"ec_token":"ec_9Jx2LqP0","merchant_order_no":"TRT-20260101-0001","items":[{"drug_code":"XA01",'
    '"drug_name":"布洛芬缓释胶囊","otc":true,"quantity":1,"unit_price_fen":2590,"trace_codes":[]}],'
    '"delivery_fee_fen":0}'
)

# (name, method, path and query, body as UTF-8 text, SHA-256 of the body, X-Yb-Signature)
INSTITUTION_VECTORS = [
    (
        "get-no-body",
        "GET",
        "/api/v1/institutions/me",
        "",
        EMPTY_SHA256,
        "a31a97ff7318c0c5260a62e35ba38c9b34afd7c0564e0379afcb1fe1c5219b82",
    ),
    (
        "get-query",
        "GET",
        "/api/v1/statements?date=2026-01-01",
        "",
        EMPTY_SHA256,
        "6ed38749f5078b251e88c5d58d81ec4ee5ded8d479ca62a78cf03634d7373d2f",
    ),
    (
        "get-query-encoded",
        "GET",
        "/api/v1/statements?date=2026-01-01&note=%E5%AF%B9%E8%B4%A6",
        "",
        EMPTY_SHA256,
        "cd9839c19e22d2278901f9c6aa627a4c19828520bd2c842b02d3feadf006366c",
    ),
    (
        "post-json-utf8",
        "POST",
        "/api/v1/payment-orders",
        ORDER_BODY,
        "f71163a800aaff364b727c532f3f9a9a4a4cad53d406bf65c0075f6e16c069e9",
        "e52d85c8e3074039788aed03e506c7b862f1548720ba33055e25dce41caa9e85",
    ),
    (
        "post-empty-body",
        "POST",
        "/api/v1/payment-orders/po_3kTq9ZbW/pay",
        "",
        EMPTY_SHA256,
        "ba085fb7a078093971c9edd30fcdc96c50632b803b7c9ef855780d31697b2d96",
    ),
]

WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
WEBHOOK_KEY_HEX = "31f290f6bf06298aab4f08d43c3f082cf648a362da2da4b0"
# (webhook-id, webhook-timestamp, body as UTF-8 text, webhook-signature)
WEBHOOK_VECTORS = [
    (
        "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
        1767225600,
        '{"type":"payment.paid","timestamp":"2026-01-01T00:00:00Z","data":{"pay_order_id":"po_3kTq9ZbW",'
        '"merchant_order_no":"TRT-20260101-0001","status":"paid","note":"同仁堂药店"}}',
        "v1,jz3h6svXtiSY8fK05KQ1Mq9ekj2bGoHuJJ6xglzyJks=",
    ),
    (
        "msg_2KWPBgLlAfxdpx2AI54pPJ85f4X",
        1767229200,
        '{"type":"payment.cancelled","timestamp":"2026-01-01T01:00:00Z","data":{"pay_order_id":"po_7mZx1Qa2",'
        '"status":"cancelled"}}',
        "v1,Gx/uY/gIkBPQzxR1o3TtG6DRyiw7K4ibKdAn3yq/I5c=",
    ),
]


def canonical(method: str, target: str, body_sha: str) -> str:
    return "\n".join([method, target, str(TIMESTAMP), NONCE, body_sha])


# ---------------------------------------------------------------- the SDK reproduces them


@pytest.mark.parametrize(("name", "method", "target", "body", "body_sha", "sig"), INSTITUTION_VECTORS)
def test_sdk_signs_the_institution_vectors(name, method, target, body, body_sha, sig):
    raw = body.encode("utf-8")
    text = signing.canonical_string(method, target, TIMESTAMP, NONCE, raw)
    assert text == canonical(method, target, body_sha)
    assert signing.signature(SECRET, text) == sig
    headers = signing.sign(SECRET, method, target, raw, key_id=KEY_ID, timestamp=TIMESTAMP, nonce=NONCE)
    assert headers == {
        "X-Yb-Key": KEY_ID,
        "X-Yb-Timestamp": str(TIMESTAMP),
        "X-Yb-Nonce": NONCE,
        "X-Yb-Signature": sig,
    }


@pytest.mark.parametrize(("msg_id", "ts", "body", "sig"), WEBHOOK_VECTORS)
def test_sdk_signs_and_verifies_the_webhook_vectors(msg_id, ts, body, sig):
    raw = body.encode("utf-8")
    assert webhooks.sign(WEBHOOK_SECRET, msg_id, ts, raw) == sig
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sig}
    assert webhooks.verify(WEBHOOK_SECRET, headers, raw, now=ts)
    assert webhooks.headers(WEBHOOK_SECRET, msg_id, raw, timestamp=ts) == headers


def test_webhook_key_is_the_base64_part_of_the_secret():
    import base64

    assert base64.b64decode(WEBHOOK_SECRET.removeprefix("whsec_")).hex() == WEBHOOK_KEY_HEX


# ---------------------------------------------------------------- the server accepts them


@pytest.mark.parametrize(("name", "method", "target", "body", "body_sha", "sig"), INSTITUTION_VECTORS)
def test_server_verifier_accepts_the_vectors(monkeypatch, name, method, target, body, body_sha, sig):
    from yibao.auth import institutions

    path, _, query = target.partition("?")
    raw = body.encode("utf-8")
    assert institutions.string_to_sign(method, path, query, str(TIMESTAMP), NONCE, raw) == canonical(
        method, target, body_sha
    )
    assert institutions.sign(SECRET, method, path, query, str(TIMESTAMP), NONCE, raw) == sig

    # The whole server-side check (shapes, window, constant-time compare, nonce burn) with the
    # registry and Redis replaced by stand-ins holding the vector's key.
    inst = SimpleNamespace(
        id=1,
        org_id="org_vectors",
        name="向量药房",
        kind="pharmacy",
        region="532900",
        services=["02121"],
        status="active",
        key_id=KEY_ID,
    )
    monkeypatch.setattr(
        institutions.registry, "institution_by_key_id", lambda uow, k: inst if k == KEY_ID else None
    )
    monkeypatch.setattr(institutions.registry, "institution_secret", lambda i: SECRET.encode())
    burnt: list[str] = []

    class Nonces:
        def set(self, key: str, value: str, nx: bool, ex: int) -> bool:
            fresh = key not in burnt
            burnt.append(key)
            return fresh

    def check(signature: str) -> object:
        return institutions.authenticate(
            object(),
            Nonces(),
            key_id=KEY_ID,
            timestamp=str(TIMESTAMP),
            nonce=NONCE,
            signature=signature,
            method=method,
            path=path,
            query=query,
            body=raw,
            now=TIMESTAMP,
        )

    assert check(sig).org_id == "org_vectors"
    burnt.clear()
    from yibao.errors import AppError

    with pytest.raises(AppError):  # one hex digit off
        check(sig[:-1] + ("0" if sig[-1] != "0" else "1"))


@pytest.mark.parametrize(("msg_id", "ts", "body", "sig"), WEBHOOK_VECTORS)
def test_server_webhook_signer_agrees(msg_id, ts, body, sig):
    from payments import webhooks as server_webhooks

    assert server_webhooks.sign(WEBHOOK_SECRET, msg_id, ts, body.encode("utf-8")) == sig


# ---------------------------------------------------------------- the docs publish them


def _table(marker: str) -> list[list[str]]:
    """The rows of the markdown table between <!-- vectors:NAME --> and <!-- /vectors -->."""
    text = DOCS.read_text(encoding="utf-8")
    m = re.search(rf"<!-- vectors:{marker} -->(.*?)<!-- /vectors -->", text, re.S)
    assert m, f"docs/sdk.md has no {marker} vectors table"
    rows = [line for line in m.group(1).splitlines() if line.startswith("|")]
    out = []
    for line in rows[2:]:  # header and separator
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        out.append([c[1:-1] if c.startswith("`") and c.endswith("`") else c for c in cells])
    return out


def _empty(cell: str) -> str:
    return "" if cell == "(empty)" else cell


def test_docs_parameters_equal_the_tests():
    params = {row[0]: row[1] for row in _table("parameters")}
    assert params == {
        "key id": KEY_ID,
        "secret": SECRET,
        "timestamp": str(TIMESTAMP),
        "nonce": NONCE,
        "webhook secret": WEBHOOK_SECRET,
        "webhook key (hex)": WEBHOOK_KEY_HEX,
    }


def test_docs_institution_table_equals_the_tests():
    rows = _table("institution")
    expected = []
    for name, method, target, body, body_sha, sig in INSTITUTION_VECTORS:
        expected.append(
            [name, method, target, body or "(empty)", body_sha, canonical(method, target, body_sha), sig]
        )
    parsed = [[*r[:5], r[5].replace("\\n", "\n"), r[6]] for r in rows]
    assert parsed == expected


def test_docs_webhook_table_equals_the_tests():
    rows = _table("webhook")
    assert [[r[0], int(r[1]), _empty(r[2]), r[3]] for r in rows] == [list(v) for v in WEBHOOK_VECTORS]
