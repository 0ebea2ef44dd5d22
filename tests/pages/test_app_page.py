"""/app/ in a real browser: activation, the code, a signed scan shown within 2 s, family, languages."""

from __future__ import annotations

import time

import pytest

from yibao.events.stream import publish

from .support import activate_in_page, ask_binding, open_app, page_token, person_id, scan, shown_code

pytestmark = pytest.mark.slow


def _clean(b) -> None:
    assert b.blocked == [], "the page asked for something outside the service"
    assert [e for e in b.console_errors if not e.startswith("Failed to load resource")] == []


def test_activate_show_code_scan_result_within_2s(app, yb, device, shot, redis_client):
    """The scan result reaches the page through the push channel (published here as the voucher
    domain will after its commit: the wired end-to-end test below checks the real wiring)."""
    p = yb.person(activate=False, balance=5000)
    inst = yb.institution(name="春城大药房")
    b = device("zh-CN", 320, 720)
    code = activate_in_page(b, p)
    page = b.page
    assert page.inner_text("#who-title") == "本人医保码"
    assert page.inner_text("#who-name") == p.name[0] + "*" + p.name[-1]
    assert "有效期还剩" in page.inner_text("#countdown")
    # The insured region the registry holds (GET /persons/me), so a wrong region is caught at home.
    page.wait_for_selector("#who-region:not([hidden])", timeout=5_000)
    assert page.inner_text("#who-region") == "参保地 532900"
    shot(b, "app-code-320-zh")

    r = scan(yb, inst, code)
    assert r.status_code == 200, r.get_json()
    t0 = time.monotonic()
    publish(
        redis_client,
        person_id(app, p.psn_no),
        "scan",
        {
            "at": "now",
            "institution": "春城大药房",
            "business_type": "02121",
            "result": "accepted",
            "code": None,
        },
    )
    page.wait_for_selector("#live[data-result=accepted]", timeout=2_000)
    assert time.monotonic() - t0 < 2
    assert "扫码成功" in page.inner_text("#live")
    assert "春城大药房" in page.inner_text("#live") and "药店购药" in page.inner_text("#live")
    shown_code(b, previous=code)  # a used code is replaced at once
    shot(b, "app-scan-result-320-zh")

    # A refusal shows the plain-language reason, never JSON.
    publish(
        redis_client,
        person_id(app, p.psn_no),
        "scan",
        {
            "institution": "春城大药房",
            "business_type": "02121",
            "result": "refused",
            "code": "VOUCHER_ALREADY_USED",
        },
    )
    page.wait_for_selector("#live[data-result=refused]", timeout=2_000)
    text = page.inner_text("#live")
    assert "已经用过" in text and "{" not in text

    # History shows the scan; account shows the balance.
    page.click("#tabs button[data-screen=history]")
    page.wait_for_selector("#usage-list li[data-result=accepted]")
    assert "春城大药房" in page.inner_text("#usage-list")
    page.click("#tabs button[data-screen=account]")
    page.wait_for_function("() => document.getElementById('balance').textContent.includes('50.00')")
    shot(b, "app-account-320-zh")
    _clean(b)


def test_e2e_wired_signed_scan_and_payment_reach_the_page(yb, device, shot):
    """The full journey with the lead's wiring: a real signed verification publishes the result, and
    a paid order publishes its split. Fails until voucher and payments call yibao.events.stream.publish."""
    p = yb.person(activate=False, balance=2000)
    inst = yb.institution(name="滇池药房")
    b = device("zh-CN", 320, 720)
    code = activate_in_page(b, p)
    page = b.page
    t0 = time.monotonic()
    r = scan(yb, inst, code)
    assert r.status_code == 200, r.get_json()
    page.wait_for_selector("#live[data-kind=scan][data-result=accepted]", timeout=2_500)
    assert time.monotonic() - t0 < 2.5
    assert "滇池药房" in page.inner_text("#live")

    order = yb.as_institution(
        inst,
        "POST",
        "/payment-orders",
        {
            "ec_token": r.get_json()["ec_token"],
            "merchant_order_no": "E2E-1",
            "items": [
                {
                    "drug_code": "XA01",
                    "drug_name": "布洛芬",
                    "otc": True,
                    "quantity": 1,
                    "unit_price_fen": 3000,
                }
            ],
        },
        headers={"Idempotency-Key": "e2e-order-1"},
    )
    assert order.status_code == 201, order.get_json()
    paid = yb.as_institution(
        inst,
        "POST",
        f"/payment-orders/{order.get_json()['pay_order_id']}/pay",
        headers={"Idempotency-Key": "e2e-1"},
    )
    assert paid.status_code == 200, paid.get_json()
    page.wait_for_selector("#live[data-kind=payment][data-result=paid]", timeout=2_500)
    text = page.inner_text("#live")
    assert "¥30.00" in text and "个人账户 ¥20.00" in text and "现金 ¥10.00" in text
    shot(b, "app-payment-result-320-zh")


def test_family_switch_delegated_code_verifies_for_the_member(app, yb, device, shot):
    binder = yb.person(activate=False)
    member = yb.person(activate=False, balance=1000)
    inst = yb.institution(name="家人药房")
    mb = device("en-US", 320, 720)
    activate_in_page(mb, member)
    bb = device("zh-CN", 320, 720)
    activate_in_page(bb, binder)

    # The binding is asked for through the API with the binder's own session (from the page's tab).
    binder.access_token = page_token(bb)
    r = ask_binding(yb, binder, member)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["status"] == "pending"

    # The member approves in their own page (English).
    mp = mb.page
    mp.click("#tabs button[data-screen=family]")
    mp.wait_for_selector("#family-pending .card")
    assert "asks to bind you as family" in mp.inner_text("#family-pending")
    shot(mb, "app-family-approve-320-en")
    mp.click("#family-pending .card button.primary")
    mp.wait_for_selector("#family-pending .card", state="detached")

    # The binder switches to the member and shows the member's code.
    bp = bb.page
    bp.click("#tabs button[data-screen=family]")
    bp.wait_for_selector(f"#family-members li[data-member='{member.psn_no}'] button")
    bp.click(f"#family-members li[data-member='{member.psn_no}'] button")
    bp.wait_for_selector(f"body[data-showing='{member.psn_no}']")
    bp.wait_for_selector(f"#qr[data-for='{member.psn_no}'] svg")
    code = shown_code(bb)
    assert "正在出示" in bp.inner_text("#who-title")
    shot(bb, "app-family-code-320-zh")

    v = scan(yb, inst, code)
    assert v.status_code == 200, v.get_json()
    assert v.get_json()["person"]["psn_no"] == member.psn_no

    # The member sees what the relative did on their behalf.
    mp.click("#tabs button[data-screen=history]")
    mp.click("#tabs button[data-screen=family]")
    mp.wait_for_selector(f"#family-acted li[data-acted-by='{binder.psn_no}']")
    assert "Shown by family member" in mp.inner_text("#family-acted")
    _clean(mb)
    _clean(bb)


@pytest.mark.parametrize(
    ("locale", "width"), [("zh-CN", 320), ("en-US", 320), ("zh-CN", 1280), ("en-US", 1280)]
)
def test_app_layout_and_language(yb, device, shot, locale, width):
    p = yb.person(activate=False)
    b = device(locale, width, 900)
    page = b.page
    open_app(b)
    lang = "en" if locale.startswith("en") else "zh-CN"
    assert page.get_attribute("html", "lang") == lang
    title = page.inner_text("#screen-activate h2")
    assert title == ("Activate your e-voucher" if lang == "en" else "激活医保电子凭证")
    # Large type for elderly users: the base size is at least 18 px, and nothing is wider than the screen.
    base = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
    assert base >= 18
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    shot(b, f"app-activate-{width}-{lang}")
    page.fill("#act-name", p.name)
    page.fill("#act-id", p.id_number)
    page.click("#activate-form button[type=submit]")
    page.wait_for_selector("#qr svg")
    box = page.locator("#qr").bounding_box()
    assert box["width"] >= min(width - 40, 300)  # the code is large
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    shot(b, f"app-code-{width}-{lang}")
    _clean(b)


def test_wrong_identity_shows_a_plain_reason(yb, device):
    p = yb.person(activate=False)
    b = device("en-US", 320, 720)
    page = open_app(b)
    page.fill("#act-name", p.name + "错")
    page.fill("#act-id", p.id_number)
    page.click("#activate-form button[type=submit]")
    page.wait_for_selector("#problem:not([hidden])")
    text = page.inner_text("#problem")
    assert "{" not in text, text
    assert page.get_attribute("#problem", "data-code") not in (None, "", "UNKNOWN", "SERVER")
