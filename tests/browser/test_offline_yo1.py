"""The JavaScript YO1 generator (yibao/static/offline/yo1.js, WebCrypto) in a real browser: it
reproduces the test vectors, and the service accepts the codes it makes."""

from __future__ import annotations

import time
import urllib.request

import pytest

from tests.sdk.test_offline_vectors import VECTORS
from tests.voucher.offline_support import new_credential
from tests.voucher.support import VoucherDriver

pytestmark = pytest.mark.slow

JS = "/static/offline/yo1.js"


def _load(browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.page
    page.goto(browser.base + "/healthz")  # any page of the origin: 127.0.0.1 is a secure context
    page.add_script_tag(url=browser.base + JS)
    assert page.evaluate("typeof YO1.code") == "function"


def test_the_file_is_served_as_javascript(live_server):
    with urllib.request.urlopen(live_server + JS, timeout=10) as resp:  # noqa: S310
        assert resp.status == 200
        assert "javascript" in resp.headers["Content-Type"]
        assert b"crypto.subtle" in resp.read()


def test_js_generator_reproduces_the_vectors(browser):
    _load(browser)
    got = browser.page.evaluate(
        """async (vectors) => Promise.all(vectors.map(([secret, cid, at, seq]) =>
               YO1.code(cid, secret, {at, seq})))""",
        [list(v[:4]) for v in VECTORS],
    )
    assert got == [v[4] for v in VECTORS]
    with_keys = browser.page.evaluate(
        """async (vectors) => Promise.all(vectors.map(async ([secret, cid, at, seq]) =>
               YO1.code(cid, await YO1.importKey(secret), {at, seq})))""",
        [list(v[:4]) for v in VECTORS],
    )
    assert with_keys == got
    assert browser.blocked == [] and browser.console_errors == []


def test_js_generator_refuses_bad_arguments(browser):
    _load(browser)
    refused = browser.page.evaluate(
        """async () => {
            const secret = "A".repeat(52), out = [];
            for (const [cid, s, seq] of [["a:b", secret, 0], ["A", secret.toLowerCase(), 0],
                                         ["A", secret, 16], ["A", secret, -1], ["A", secret, 1.5]]) {
                try { await YO1.code(cid, s, {at: 0, seq}); out.push(false); } catch (e) { out.push(true); }
            }
            return out;
        }"""
    )
    assert refused == [True] * 5


def test_codes_made_in_the_browser_are_accepted(browser, yb, app):
    p, inst = yb.person(), yb.institution()
    cred = new_credential(yb, p)
    _load(browser)
    now = time.time()
    codes = browser.page.evaluate(
        "async ([cid, s, at]) => [await YO1.code(cid, s, {at}), await YO1.code(cid, s, {at, seq: 1})]",
        [cred["credential_id"], cred["secret"], now],
    )
    vd = VoucherDriver(yb, app)
    for code in codes:
        resp = vd.scan(inst, code)
        assert resp.status_code == 200, resp.get_json()
