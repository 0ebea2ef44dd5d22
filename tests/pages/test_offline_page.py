"""/app/ with no network: YO1 offline codes made in the page (docs/pages.md "Offline codes").

Enrolment online (the key kept in IndexedDB, non-extractable), the network cut (Playwright offline and
aborted requests), the offline QR read back from a screenshot with zxing-cpp and verified by the live
server as a pharmacy, back to signed codes online; a family member's code stays online only; turning
offline codes off and "lost phone" remove the key.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from yibao_client import offline as sdk

from .support import activate_in_page, ask_binding, page_token, scan, scan_live, shown_code

VENDOR = Path(__file__).parents[2] / "yibao" / "static" / "vendor"
QR_JS = VENDOR / "qrcode-generator" / "qrcode.js"
QR_JS_SHA256 = "79ec86f82856005b1c887905cfccfcfbec3821ca61c7fd5a952faa5f778f791c"
SERVER_CODE = re.compile(r"YO1:[A-Z2-7]{16}:[1-9][0-9]*:(?:[0-9]|1[0-5]):[A-Z2-7]{16}")

# What the page keeps in IndexedDB, read in the page (after the page made it: body[data-offline]).
READ_RECORD = """async () => {
  const db = await new Promise((ok, ko) => {
    const r = indexedDB.open("yb.app.offline", 1);
    r.onsuccess = () => ok(r.result);
    r.onerror = () => ko(r.error);
  });
  const rec = await new Promise((ok, ko) => {
    const r = db.transaction("credential").objectStore("credential").get("device");
    r.onsuccess = () => ok(r.result);
    r.onerror = () => ko(r.error);
  });
  db.close();
  if (!rec) return null;
  let exported = "exported";
  try { await crypto.subtle.exportKey("raw", rec.key); } catch (e) { exported = e.name; }
  let jwk = "exported";
  try { await crypto.subtle.exportKey("jwk", rec.key); } catch (e) { jwk = e.name; }
  const fields = Object.fromEntries(Object.entries(rec).filter(([k]) => k !== "key"));
  return {fields, isKey: rec.key instanceof CryptoKey, extractable: rec.key.extractable,
          algorithm: rec.key.algorithm.name, hash: rec.key.algorithm.hash.name,
          usages: rec.key.usages, exported, jwk};
}"""

STORAGE = """() => JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage),
                                 document.documentElement.outerHTML])"""


def _clean(b) -> None:
    assert b.blocked == [], "the page asked for something outside the service"
    # Requests that failed because the network was cut are expected; nothing else may be logged.
    assert [e for e in b.console_errors if not e.startswith("Failed to load resource")] == []


def _decode(png: bytes) -> zxingcpp.Barcode:
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)).convert("L"))
    assert len(found) == 1, found
    return found[0]


def _enrolled(b, p):
    """Activate in the page and return the credential the page enrolled (the POST's answer)."""
    page = b.page
    with page.expect_response(
        lambda r: r.url.endswith("/api/v1/offline-credentials") and r.request.method == "POST",
        timeout=15_000,
    ) as info:
        code = activate_in_page(b, p)
    assert info.value.status == 201
    page.wait_for_selector("body[data-offline=on]", timeout=10_000)
    return code, info.value.json()


def _offline_shown(page, previous: str | None = None) -> str:
    page.wait_for_selector("#qr[data-mode=offline] svg", timeout=10_000)
    if previous is not None:
        page.wait_for_function(
            "prev => document.getElementById('qr').dataset.qrContent !== prev", arg=previous, timeout=10_000
        )
    return page.get_attribute("#qr", "data-qr-content")


def test_the_vendored_qr_encoder_is_the_pinned_release():
    data = QR_JS.read_bytes()
    assert hashlib.sha256(data).hexdigest() == QR_JS_SHA256
    readme = (VENDOR / "README.md").read_text()
    assert QR_JS_SHA256 in readme and "qrcode-generator" in readme and "2.0.4" in readme
    licence = (VENDOR / "qrcode-generator" / "LICENSE").read_text()
    assert "Kazuhiko Arase" in licence and "MIT" in licence
    assert b"eval(" not in data and b"new Function" not in data  # the pages' CSP allows no eval


def test_the_page_loads_its_scripts_from_this_origin_only(client):
    html = client.get("/app/").get_data(as_text=True)
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all(body.strip() == "" for _, body in scripts), "no inline script"
    srcs = [re.search(r'src="([^"]+)"', attrs).group(1) for attrs, _ in scripts]
    assert srcs == ["/static/offline/yo1.js", "/static/vendor/qrcode-generator/qrcode.js", "app.js"]
    for src in srcs[:2]:
        r = client.get(src)
        assert r.status_code == 200 and r.mimetype == "text/javascript"
    assert client.get("/app/offline.js").mimetype == "text/javascript"


@pytest.mark.slow
def test_offline_code_made_in_the_page_verifies_and_online_returns(yb, device, shot, pages_server):
    p = yb.person(activate=False)
    inst = yb.institution(name="地下一层药房")
    b = device("zh-CN", 320, 720)
    page = b.page
    signed, cred = _enrolled(b, p)
    assert not signed.startswith("YO1:")
    assert page.is_hidden("#code-mode") and page.is_visible("#code-once")

    # The key: a non-extractable HMAC CryptoKey beside its credential id, and the secret nowhere else.
    rec = page.evaluate(READ_RECORD)
    assert rec["isKey"] is True and rec["extractable"] is False
    assert rec["exported"] == "InvalidAccessError" and rec["jwk"] == "InvalidAccessError"
    assert (rec["algorithm"], rec["hash"], rec["usages"]) == ("HMAC", "SHA-256", ["sign"])
    assert rec["fields"]["credentialId"] == cred["credential_id"]
    # Whose key it is, as a digest only: the person's number is not kept on the phone.
    assert "psn" not in rec["fields"] and p.psn_no not in str(rec["fields"])
    assert rec["fields"]["psnHash"] == hashlib.sha256(f"yb-psn:{p.psn_no}".encode()).hexdigest()
    assert cred["secret"] not in str(rec["fields"])
    assert cred["secret"] not in page.evaluate(STORAGE)

    # The page's generator is the contract's: its codes equal the SDK's for the same credential.
    versions = page.evaluate(
        """async (codes) => { const m = await import("/app/offline.js");
                              return codes.map((c) => m.drawQr(document.createElement("figure"), c)); }""",
        [
            "YO1:" + "Z" * 16 + ":9999999999:15:" + "7" * 16,  # the longest a server credential makes
            "YO1:" + "A" * 16 + ":0:0:" + "A" * 16,
        ],
    )
    assert versions == [3, 3]

    # The network goes: the page makes a YO1 code itself and says so.
    page.context.set_offline(True)
    code = _offline_shown(page)
    assert SERVER_CODE.fullmatch(code), code
    assert code.startswith(f"YO1:{cred['credential_id']}:")
    badge = page.inner_text("#code-mode")
    assert "离线码" in badge and "✈" in badge
    assert "秒后换新码" in page.inner_text("#countdown")
    assert page.is_hidden("#code-once")  # no "a new code appears after a scan": offline hears of none
    assert int(page.get_attribute("#qr", "data-qr-version")) <= 4
    _, step, seq, _ = code.split(":")[1:]
    assert code == sdk.make_code(cred["credential_id"], cred["secret"], step=int(step), seq=int(seq))
    shot(b, "app-offline-code-320-zh")

    # What a counter's imager reads off the screen: the same text, QR version ≤ 4, level M.
    read = _decode(page.locator("#qr").screenshot())
    assert read.text == code
    assert read.ec_level == "M" and int(read.extra["Version"]) <= 4

    # A new code on request (each is single use): the next seq of the step, or the next step.
    page.click("#refresh")
    code2 = _offline_shown(page, previous=code)
    s2, q2 = map(int, code2.split(":")[2:4])
    assert (s2, q2) in {(int(step), int(seq) + 1), (int(step) + 1, 0)}

    # The pharmacy is online: the live server accepts the phone's offline code, once.
    status, body = scan_live(pages_server, inst, read.text)
    assert status == 200, body
    assert body["person"]["psn_no"] == p.psn_no
    status, body = scan_live(pages_server, inst, read.text)
    assert (status, body["code"]) == (409, "VOUCHER_ALREADY_USED")

    # Back online: signed codes again, the label gone.
    page.context.set_offline(False)
    page.wait_for_selector("#qr[data-mode=signed] svg", timeout=10_000)
    assert page.is_hidden("#code-mode")
    back = page.get_attribute("#qr", "data-qr-content")
    assert not back.startswith("YO1:")

    # Requests that fail while the browser believes it is online (a captive portal, a dead uplink).
    page.route("**/api/v1/vouchers*", lambda route: route.abort("internetdisconnected"))
    page.click("#refresh")
    code3 = _offline_shown(page)
    assert code3.startswith(f"YO1:{cred['credential_id']}:") and code3 not in (code, code2)
    assert scan(yb, inst, code3).status_code == 200
    page.unroute("**/api/v1/vouchers*")
    page.click("#refresh")
    page.wait_for_selector("#qr[data-mode=signed] svg", timeout=10_000)
    assert scan(yb, inst, shown_code(b)).status_code == 200
    p.access_token = page_token(b)
    usage = yb.as_user(p, "GET", "/vouchers/usage?limit=10")
    kinds = [u["kind"] for u in usage.get_json()["items"] if u["result"] == "accepted"]
    assert kinds == ["signed", "offline", "offline"]
    _clean(b)


@pytest.mark.slow
def test_a_family_members_code_stays_online(yb, device, shot):
    binder = yb.person(activate=False)
    member = yb.person()
    b = device("en-US", 320, 720)
    _enrolled(b, binder)
    page = b.page
    binder.access_token = page_token(b)
    r = ask_binding(yb, binder, member)
    assert r.status_code == 201, r.get_json()
    r = yb.as_user(member, "POST", f"/family/bindings/{r.get_json()['binding_id']}/approve")
    assert r.status_code == 200, r.get_json()

    page.click("#tabs button[data-screen=family]")
    page.click(f"#family-members li[data-member='{member.psn_no}'] button")
    page.wait_for_selector(f"#qr[data-for='{member.psn_no}'][data-mode=signed] svg")

    page.context.set_offline(True)
    page.wait_for_selector("#code-mode[data-mode=member-offline]", timeout=10_000)
    assert "family member's code needs the network" in page.inner_text("#code-mode")
    assert page.locator("#qr svg").count() == 0
    assert page.get_attribute("#qr", "data-qr-content") is None
    page.click("#refresh")
    page.wait_for_selector("#refresh:not([disabled])")
    assert page.locator("#qr svg").count() == 0
    shot(b, "app-offline-member-320-en")

    # My own code, still offline: made here.
    page.click("#back-to-me")
    code = _offline_shown(page)
    assert code.startswith("YO1:") and "Offline code" in page.inner_text("#code-mode")
    _clean(b)


@pytest.mark.slow
def test_turning_offline_codes_off_and_lost_phone_remove_the_key(yb, device, shot):
    p = yb.person(activate=False)
    inst = yb.institution()
    b = device("zh-CN", 320, 720)
    _, cred = _enrolled(b, p)
    page = b.page
    page.context.set_offline(True)
    made = _offline_shown(page)
    page.context.set_offline(False)
    page.wait_for_selector("#qr[data-mode=signed] svg", timeout=10_000)

    page.click("#tabs button[data-screen=more]")
    page.wait_for_selector("#offline-state[data-state=on]")
    assert cred["credential_id"][-4:] in page.inner_text("#offline-state")
    page.click("#offline-off")
    page.wait_for_selector("#offline-state[data-state=off]")
    assert page.evaluate(READ_RECORD) is None
    p.access_token = page_token(b)
    items = yb.as_user(p, "GET", "/offline-credentials").get_json()["items"]
    assert [(c["credential_id"], c["status"]) for c in items] == [(cred["credential_id"], "ended")]
    assert scan(yb, inst, made).get_json()["code"] == "VOUCHER_REVOKED"

    # Off stays off: online codes do not enrol again, and with no network there is no code to show.
    page.click("#tabs button[data-screen=code]")
    page.wait_for_selector("#qr[data-mode=signed] svg")
    page.context.set_offline(True)
    page.wait_for_selector("#problem[data-code=NETWORK]", timeout=10_000)
    assert page.get_attribute("#qr", "data-mode") == "signed"  # the last signed code, not an offline one
    page.context.set_offline(False)
    page.wait_for_selector("#qr[data-mode=signed] svg", timeout=10_000)
    assert len(yb.as_user(p, "GET", "/offline-credentials").get_json()["items"]) == 1

    # On again: a new credential; then "lost phone" ends it at the service and the page drops the key.
    page.click("#tabs button[data-screen=more]")
    page.click("#offline-on")
    page.wait_for_selector("#offline-state[data-state=on]")
    again = page.evaluate(READ_RECORD)["fields"]["credentialId"]
    assert again != cred["credential_id"]
    page.click("#revoke")
    page.click("#revoke-yes")
    page.wait_for_selector("#revoke-result:not([hidden])")
    assert page.evaluate(READ_RECORD) is None
    items = yb.as_user(p, "GET", "/offline-credentials").get_json()["items"]
    statuses = {c["credential_id"]: c["status"] for c in items}
    assert statuses[again] == "ended"
    shot(b, "app-offline-more-320-zh")
    _clean(b)
