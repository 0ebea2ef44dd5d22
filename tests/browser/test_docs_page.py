"""The API docs page in a real browser with no network but the service: it renders and it signs."""

from __future__ import annotations

import json
import urllib.request

import pytest

pytestmark = pytest.mark.slow


def _spec(base: str) -> dict:
    with urllib.request.urlopen(base + "/api/v1/openapi.json", timeout=10) as resp:  # noqa: S310
        return json.load(resp)


def test_docs_page_renders_every_tag_offline_and_signs_an_institution_call(browser, yb):
    inst = yb.institution(kind="pharmacy", name="文档药房")
    page = browser.page
    methods = {"get", "post", "put", "patch", "delete"}
    paths = _spec(browser.base)["paths"].values()
    tags = {t for item in paths for m, op in item.items() if m in methods for t in op.get("tags", [])}

    page.goto(browser.base + "/api/v1/docs", wait_until="networkidle")
    page.wait_for_selector(".opblock-tag-section", timeout=30_000)
    rendered = {el.get_attribute("data-tag") for el in page.query_selector_all(".opblock-tag")}
    assert tags <= rendered, f"tags not rendered: {tags - rendered}"

    # The institution enters its key id and secret once; the secret field is cleared at once.
    page.fill("#yb-institution input[name=key_id]", inst.key_id)
    page.fill("#yb-institution input[name=secret]", inst.secret)
    page.click("#yb-institution button[type=submit]")
    assert page.get_attribute("#yb-institution-state", "data-signing") == "yes"
    assert page.input_value("#yb-institution input[name=secret]") == ""

    # "Try it out" on GET /api/v1/institutions/me, signed in the browser with WebCrypto.
    op = page.locator(".opblock-get", has=page.locator("[data-path='/api/v1/institutions/me']")).first
    for t in sorted(tags):  # open the tags until the one that holds the operation
        if op.is_visible():
            break
        page.click(f".opblock-tag[data-tag='{t}']")
    assert op.is_visible()
    op.locator(".opblock-summary").click()
    op.locator("button.try-out__btn").click()
    op.locator("button.execute").click()
    status = op.locator(".live-responses-table .response .response-col_status").first
    status.wait_for(timeout=15_000)
    body = op.locator(".live-responses-table .microlight").first.inner_text()
    assert status.inner_text().strip().startswith("200"), body
    assert json.loads(body)["org_id"] == inst.org_id

    assert browser.blocked == [], "the page asked for something outside the service"
    assert not [e for e in browser.console_errors if "Content Security Policy" in e], browser.console_errors


def test_docs_page_unsigned_call_is_refused_with_a_problem(browser, yb):
    """Without credentials the page sends no signature and the service answers problem+json 401."""
    page = browser.page
    page.goto(browser.base + "/api/v1/docs", wait_until="networkidle")
    page.wait_for_selector(".opblock-tag-section", timeout=30_000)
    result = page.evaluate(
        """async () => {
            const r = await fetch('/api/v1/institutions/me');
            return {status: r.status, type: r.headers.get('content-type'), body: await r.json()};
        }"""
    )
    assert result["status"] == 401
    assert result["type"].startswith("application/problem+json")
    assert result["body"]["code"] == "INSTITUTION_AUTH_FAILED"


def test_docs_canonical_string_matches_the_contract(browser):
    """The page's signer builds the contract's canonical string and the same HMAC as the server side."""
    import hashlib
    import hmac

    page = browser.page
    page.goto(browser.base + "/api/v1/docs", wait_until="networkidle")
    page.wait_for_selector(".opblock-tag-section", timeout=30_000)  # set up after window.ybDocs
    body = '{"a":"药"}'
    got = page.evaluate(
        """async ([body]) => {
            const text = await window.ybDocs.canonical('post', '/api/v1/x?b=2&a=1', body, '1700000000', 'n0');
            return {text, sig: await window.ybDocs.hmacHex('s3cret', text)};
        }""",
        [body],
    )
    want = "\n".join(
        ["POST", "/api/v1/x?b=2&a=1", "1700000000", "n0", hashlib.sha256(body.encode()).hexdigest()]
    )
    assert got["text"] == want
    assert got["sig"] == hmac.new(b"s3cret", want.encode(), hashlib.sha256).hexdigest()
