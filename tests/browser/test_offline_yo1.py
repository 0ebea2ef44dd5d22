"""The JavaScript YO1 generator (yibao/static/offline/yo1.js, WebCrypto) in a real browser: it
reproduces the test vectors, and the service accepts the codes it makes."""

from __future__ import annotations

import base64
import random
import string
import time
import urllib.request

import pytest

from tests.sdk.test_offline_vectors import VECTORS
from tests.voucher.offline_support import new_credential
from tests.voucher.support import VoucherDriver
from yibao_client import offline

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


def _random_cases(n: int) -> list[tuple[str, str, float, int]]:
    """Credentials of every allowed shape, times at millisecond resolution (Date.now() / 1000) with
    the last and first millisecond of steps among them, every seq."""
    rnd = random.Random(14)
    alphabet = string.ascii_letters + string.digits + "_-"
    cases = []
    for i in range(n):
        secret = base64.b32encode(rnd.randbytes(32)).decode().rstrip("=")
        cid = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 32)))
        ms = rnd.randrange(0, 4_102_444_800_000)  # up to 2100
        if i % 3 == 1:
            ms = ms - ms % 30_000 - 1  # the step's last millisecond
        elif i % 3 == 2:
            ms = ms - ms % 30_000  # its first
        cases.append((secret, cid, max(ms, 0) / 1000, rnd.randint(0, 15)))
    return cases


def test_the_app_pages_generator_agrees_with_the_sdk(browser):
    """The generator /app/ loads (its <script>) and the SDK's make the same codes: the docs' vectors,
    and 200 random credentials and times, with the secret and with the page's non-extractable key."""
    page = browser.page
    page.goto(browser.base + "/app/")
    page.wait_for_selector("body[data-ready=yes]")
    cases = [(s, c, float(at), q) for s, c, at, q, _ in VECTORS] + _random_cases(200)
    got = page.evaluate(
        """async (cases) => Promise.all(cases.map(async ([secret, cid, at, seq]) => {
               const key = await YO1.importKey(secret);
               return [await YO1.code(cid, secret, {at, seq}), await YO1.code(cid, key, {at, seq}),
                       key.extractable];
           }))""",
        [list(c) for c in cases],
    )
    want = [offline.Credential(cid, secret).code(at=at, seq=seq) for secret, cid, at, seq in cases]
    assert [g[0] for g in got] == want
    assert [g[1] for g in got] == want
    assert {g[2] for g in got} == {False}
    assert want[: len(VECTORS)] == [v[4] for v in VECTORS]
    assert browser.blocked == [] and browser.console_errors == []
