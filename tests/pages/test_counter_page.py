"""/counter/ in a real browser: sign in, typed scan + Enter, order with two boxes, pay, receipt, refund."""

from __future__ import annotations

import pytest

from tests.payments.support import trace_code
from tests.supervision.support import quantity_rule

pytestmark = pytest.mark.slow


def _sign_in(b, inst):
    page = b.page
    page.goto(b.base + "/counter/", wait_until="networkidle")
    page.wait_for_selector("body[data-ready=yes]")
    page.fill("#key-id", inst.key_id)
    page.fill("#secret", inst.secret)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("body[data-screen=desk]")
    assert page.input_value("#secret") == ""
    return page


def _code(yb, p) -> str:
    r = yb.as_user(p, "POST", "/vouchers")
    assert r.status_code == 201, r.get_json()
    return r.get_json()["qr_content"]


@pytest.mark.parametrize(("locale", "width"), [("en-US", 1280), ("zh-CN", 320)])
def test_counter_scan_order_two_boxes_pay_receipt_refund(yb, device, shot, locale, width):
    inst = yb.institution(name="Kunming Pharmacy" if locale == "en-US" else "昆明药房")
    p = yb.person(balance=5000)
    b = device(locale, width, 900)
    page = _sign_in(b, inst)
    lang = "en" if locale == "en-US" else "zh-CN"
    shot(b, f"counter-desk-{width}-{lang}")

    # A USB scanner types the code and presses Enter into the focused input.
    assert page.evaluate("document.activeElement.id") == "scan"
    code = _code(yb, p)
    page.keyboard.type(code)
    page.keyboard.press("Enter")
    page.wait_for_selector("#verdict[data-result=accepted]")
    assert page.inner_text("#verdict-person dd[data-key=region]") == "532900"
    assert ("yes" if lang == "en" else "有") in page.inner_text("#verdict-person dd[data-key=account]")

    line = page.locator("#lines li.line").first
    line.locator("input[name=drug_code]").fill("XA01")
    line.locator("input[name=drug_name]").fill("布洛芬缓释胶囊")
    line.locator("input[name=quantity]").fill("2")
    line.locator("input[name=price]").fill("30.00")
    codes = [trace_code(), trace_code()]
    for c in codes:  # each box's traceability code scanned into its line
        line.locator("input[name=trace]").click()
        page.keyboard.type(c)
        page.keyboard.press("Enter")
    assert line.get_attribute("data-codes") == "2"
    wide = page.evaluate(
        "w => [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > w)"
        ".map(e => e.tagName + '#' + e.id + '.' + e.className)",
        width,
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= width, wide
    shot(b, f"counter-sale-{width}-{lang}")

    page.click("#create")
    page.wait_for_selector("#order[data-status=created]")
    page.click("#pay")
    page.wait_for_selector("#receipt[data-status=paid]")
    receipt = page.inner_text("#receipt")
    assert page.inner_text("#receipt-split dd[data-key=total]") == "¥60.00"
    assert page.inner_text("#receipt-split dd[data-key=account]") == "¥50.00"
    assert page.inner_text("#receipt-split dd[data-key=mutual]") == "¥0.00"
    assert page.inner_text("#receipt-split dd[data-key=cash]") == "¥10.00"
    assert all(c in receipt for c in codes)
    shot(b, f"counter-receipt-{width}-{lang}")
    page.emulate_media(media="print")
    assert not page.is_visible("#scan") and page.is_visible("#receipt")
    shot(b, f"counter-receipt-print-{width}-{lang}")
    page.emulate_media(media="screen")

    page.click("#refund")
    page.wait_for_selector("#refund-result[data-status]")
    assert page.get_attribute("#refund-result", "data-account") == "5000"
    assert page.get_attribute("#refund-result", "data-cash") == "1000"
    assert yb.as_user(p, "GET", "/accounts/me").get_json()["balance_fen"] == 5000

    page.click("#statement-go")
    page.wait_for_selector("#statement[data-payments='1']")
    assert page.get_attribute("#statement", "data-reconciled") == "true"

    # The same code again: refused, with the reason in plain language (never JSON).
    page.click("#next")
    page.keyboard.type(code)
    page.keyboard.press("Enter")
    page.wait_for_selector("#verdict[data-result=refused][data-code=VOUCHER_ALREADY_USED]")
    reason = page.inner_text("#verdict-reason")
    assert "{" not in reason and "VOUCHER_ALREADY_USED" in reason
    shot(b, f"counter-refused-{width}-{lang}")
    assert b.blocked == [], b.blocked
    # An answered refusal (the 409 above) is logged by Chromium itself; script errors are not allowed.
    assert [e for e in b.console_errors if not e.startswith("Failed to load resource")] == []


def test_counter_wrong_secret_is_refused_in_plain_words(yb, device):
    inst = yb.institution()
    b = device("en-US", 1280, 800)
    page = b.page
    page.goto(b.base + "/counter/", wait_until="networkidle")
    page.fill("#key-id", inst.key_id)
    page.fill("#secret", "wrong")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#problem[data-code=INSTITUTION_AUTH_FAILED]")
    assert "secret is wrong" in page.inner_text("#problem")
    assert page.evaluate("sessionStorage.getItem('yb.counter.creds')") is None


def test_counter_signer_matches_the_contract(device):
    import hashlib
    import hmac

    b = device("en-US", 1280, 800)
    page = b.page
    page.goto(b.base + "/counter/", wait_until="networkidle")
    got = page.evaluate(
        """async () => {
            const m = await import('/counter/shared/sign.js');
            const text = await m.canonical('post', '/api/v1/x?b=2&a=1', '{"a":"药"}', '1700000000', 'n0');
            return {text, sig: await m.hmacHex('s3cret', text)};
        }"""
    )
    body = '{"a":"药"}'
    want = "\n".join(
        ["POST", "/api/v1/x?b=2&a=1", "1700000000", "n0", hashlib.sha256(body.encode()).hexdigest()]
    )
    assert got["text"] == want
    assert got["sig"] == hmac.new(b"s3cret", want.encode(), hashlib.sha256).hexdigest()


@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_counter_refused_by_a_supervision_rule_shows_the_rule_and_its_count(yb, device, shot, locale):
    """An operator's quantity_limit (2 boxes of XA01 in 30 days): a third box at the counter is refused
    with the rule and its count in plain words, nothing written; two boxes go through."""
    rule_id = quantity_rule(yb, code="XA01", max_quantity=2, days=30)
    inst = yb.institution(name="监管药房")
    p = yb.person(balance=5000)
    b = device(locale, 1280, 900)
    page = _sign_in(b, inst)
    page.keyboard.type(_code(yb, p))
    page.keyboard.press("Enter")
    page.wait_for_selector("#verdict[data-result=accepted]")
    line = page.locator("#lines li.line").first
    line.locator("input[name=drug_code]").fill("XA01")
    line.locator("input[name=drug_name]").fill("布洛芬缓释胶囊")
    line.locator("input[name=quantity]").fill("3")
    line.locator("input[name=price]").fill("10.00")
    page.click("#create")
    page.wait_for_selector("#problem[data-code=SUPERVISION_BLOCKED]")
    item = page.locator(f"#problem .violations li[data-rule='{rule_id}'][data-kind=quantity_limit]")
    text = item.inner_text()
    assert rule_id in text and "XA01" in text and "{" not in text
    assert ("limit is 2" in text and "3 in this order" in text) if locale == "en-US" else ("上限 2" in text)
    assert page.locator("#order[data-status=created]").count() == 0
    shot(b, f"counter-supervision-blocked-1280-{'en' if locale == 'en-US' else 'zh-CN'}")
    # Two boxes are exactly the limit: the order is placed.
    line.locator("input[name=quantity]").fill("2")
    page.click("#create")
    page.wait_for_selector("#order[data-status=created]")
    assert page.is_hidden("#problem")
    assert b.blocked == [], b.blocked
    assert [e for e in b.console_errors if not e.startswith("Failed to load resource")] == []
