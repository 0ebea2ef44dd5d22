"""/app/ opened with no network (the service worker's app shell) and the phone's clock offset.

The person used the app online once (service worker installed, device enrolled), closed it, walks into
the basement and opens it: the page comes from the worker's cache, shows the stored credential's code
with its masked labels, and the live server accepts it. No API answer is ever in Cache Storage, and
logging out leaves nothing of the person there or in IndexedDB. A phone clock 5 minutes off still makes
accepted codes (phone time + the offset last seen in a Date header), with a warning. docs/pages.md.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any

import pytest

from yibao import pages
from yibao_client import offline as sdk

from .support import scan_live, shown_code
from .test_offline_page import READ_RECORD, _clean, _decode, _enrolled, _offline_shown

# Everything in Cache Storage: cache name, URL path, body text.
CACHED = """async () => {
  const out = [];
  for (const name of await caches.keys()) {
    const cache = await caches.open(name);
    for (const req of await cache.keys()) {
      const resp = await cache.match(req);
      out.push({name, path: new URL(req.url).pathname, body: await resp.text()});
    }
  }
  return out;
}"""


def _worker_ready(page: Any) -> None:
    """The worker is active, controls the page and holds the whole shell."""
    page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=15_000)
    page.wait_for_function(
        "async ([name, n]) => (await (await caches.open(name)).keys()).length === n",
        arg=["yb-app-shell-" + pages.BUILD, len(pages.SHELL)],
        timeout=15_000,
    )


def _new_page(b: Any) -> Any:
    """Another tab of the same phone (same context: IndexedDB, Cache Storage, the worker)."""
    page = b.page.context.new_page()
    page.on("console", lambda msg: msg.type == "error" and b.console_errors.append(msg.text))
    page.on("pageerror", lambda exc: b.console_errors.append(str(exc)))
    b.page = page
    return page


def _assert_cache_has_nothing_personal(page: Any, *secrets: str) -> None:
    cached = page.evaluate(CACHED)
    assert {c["name"] for c in cached} == {"yb-app-shell-" + pages.BUILD}
    assert sorted(c["path"] for c in cached) == sorted(pages.SHELL)
    assert not [c["path"] for c in cached if c["path"].startswith("/api/")]
    for c in cached:
        for s in secrets:
            assert s not in c["body"], (c["path"], s)


def test_the_worker_is_served_with_its_build_and_scope(client):
    r = client.get("/app/sw.js")
    assert r.status_code == 200 and r.mimetype == "text/javascript"
    assert r.headers["Service-Worker-Allowed"] == "/app/"
    assert "worker-src 'self'" in r.headers["Content-Security-Policy"]
    text = r.get_data(as_text=True)
    assert f'const BUILD = "{pages.BUILD}";' in text
    assert '"/api/' not in text.split("\n", 2)[1]  # the shell list holds no API path
    assert text.count('startsWith("/api/")') == 1
    # The shell: the page, its scripts and styles, the strings, the generator and the QR encoder.
    assert {"/app/", "/app/app.js", "/app/offline.js", "/app/shared/i18n.js", "/app/shared/api.js"} <= set(
        pages.SHELL
    )
    assert {"/static/offline/yo1.js", "/static/vendor/qrcode-generator/qrcode.js"} <= set(pages.SHELL)
    assert "/app/sw.js" not in pages.SHELL
    for url in pages.SHELL:
        assert client.get(url).status_code == 200, url
    assert "worker-src 'self'" in client.get("/app/").headers["Content-Security-Policy"]
    assert client.get("/counter/sw.js").status_code == 404


def test_a_changed_shell_file_is_a_new_build(monkeypatch, tmp_path):
    before = pages._build()
    assert before == pages.BUILD
    changed = tmp_path / "app.css"
    changed.write_bytes(pages.SHELL["/app/app.css"].read_bytes() + b"\n/* release 2 */\n")
    monkeypatch.setitem(pages.SHELL, "/app/app.css", changed)
    assert pages._build() != before


@pytest.mark.slow
def test_the_app_opens_with_no_network_and_shows_the_offline_code(yb, device, shot, pages_server):
    p = yb.person(activate=False)
    inst = yb.institution(name="地下一层药房")
    b = device("zh-CN", 320, 720)
    page = b.page
    _, cred = _enrolled(b, p)
    _worker_ready(page)

    # The labels stored beside the key: masked as the server shows them, never the ID number.
    fields = page.evaluate(READ_RECORD)["fields"]
    name_masked = page.evaluate("JSON.parse(sessionStorage.getItem('yb.app.session')).nameMasked")
    assert fields["nameMasked"] == name_masked and name_masked != p.name
    assert fields["psnMasked"] == p.psn_no[:3] + "*" * (len(p.psn_no) - 7) + p.psn_no[-4:]
    assert p.id_number not in str(fields) and p.id_number[-6:] not in str(fields)
    assert p.psn_no not in str(fields)  # a digest of it decides whose record it is (offline.js)

    # API answers go to the network, never through the worker's cache; the shell comes from the worker.
    with page.expect_response(lambda r: "/api/v1/vouchers" in r.url) as info:
        page.click("#refresh")
    assert info.value.status == 201 and not info.value.from_service_worker
    _assert_cache_has_nothing_personal(page, p.name, name_masked, p.psn_no, p.id_number, cred["secret"])

    # The tab is closed (its session with it); no network; the person opens the app again.
    page.close()
    page.context.set_offline(True)
    page = _new_page(b)
    resp = page.goto(b.base + "/app/")
    assert resp is not None and resp.ok and resp.from_service_worker
    page.wait_for_selector("body[data-ready=yes]")
    code = _offline_shown(page)
    assert code.startswith(f"YO1:{cred['credential_id']}:")
    assert "离线码" in page.inner_text("#code-mode") and "离线码" in page.inner_text("#who-title")
    assert page.inner_text("#who-name") == fields["nameMasked"]
    assert fields["psnMasked"] in page.inner_text("#who-region")
    assert page.is_hidden("#tabs") and page.is_visible("#offline-login")
    html = page.content()
    assert p.psn_no not in html and p.id_number not in html and p.name not in html
    _, step, seq, _ = code.split(":")[1:]
    assert code == sdk.make_code(cred["credential_id"], cred["secret"], step=int(step), seq=int(seq))
    read = _decode(page.locator("#qr").screenshot())
    assert read.text == code and int(read.extra["Version"]) <= 4
    shot(b, "app-offline-start-320-zh")

    # Back online, the pharmacy's scan of that code is accepted by the live server, once.
    page.context.set_offline(False)
    status, body = scan_live(pages_server, inst, read.text)
    assert status == 200, body
    assert body["person"]["psn_no"] == p.psn_no
    assert scan_live(pages_server, inst, read.text)[1]["code"] == "VOUCHER_ALREADY_USED"

    # Log in again here, then log out: no key, no labels, nothing of the person in Cache Storage.
    page.click("#offline-login")
    page.fill("#act-name", p.name)
    page.fill("#act-id", p.id_number)
    page.click("#activate-form button[type=submit]")
    shown_code(b)
    page.wait_for_selector("body[data-offline=on]", timeout=10_000)
    page.click("#tabs button[data-screen=more]")
    page.click("#logout")
    page.wait_for_selector("#screen-activate:not([hidden])")
    page.wait_for_function("document.body.dataset.offline === 'off'")
    assert page.evaluate(READ_RECORD) is None
    _assert_cache_has_nothing_personal(page, p.name, name_masked, p.psn_no, p.id_number)
    storage = page.evaluate("JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])")
    assert p.psn_no not in storage and name_masked not in storage

    # Opened again with no network after logging out: nothing to show but the activation screen.
    page.close()
    page.context.set_offline(True)
    page = _new_page(b)
    page.goto(b.base + "/app/")
    page.wait_for_selector("body[data-ready=yes]")
    assert page.is_visible("#screen-activate") and page.locator("#qr svg").count() == 0
    page.context.set_offline(False)
    _clean(b)


@pytest.mark.slow
@pytest.mark.parametrize("skew_s", [-300, 300])
def test_a_phone_clock_five_minutes_off_still_makes_accepted_codes(yb, device, pages_server, skew_s):
    p = yb.person(activate=False)
    inst = yb.institution()
    b = device("zh-CN", 320, 720)
    page = b.page
    page.clock.install(time=time.time() + skew_s)  # the phone's clock, running, 5 minutes off
    _, cred = _enrolled(b, p)

    # The offset from the last Date header: shown as a warning beyond 30 s, stored with the credential.
    page.wait_for_selector("#clock:not([hidden])", timeout=10_000)
    offset_ms = int(page.get_attribute("#clock", "data-offset-ms"))
    assert abs(offset_ms + skew_s * 1000) < 2500, offset_ms
    word = "慢" if skew_s < 0 else "快"  # behind / ahead; the Date header's whole seconds: 4:58 … 5:02
    warning = page.inner_text("#clock")
    assert re.search(word + r" (4 分 5[89]|5 分 [0-2]) 秒", warning), warning
    _worker_ready(page)
    page.wait_for_function(
        "async (want) => { const m = await import('/app/offline.js'); const r = await m.storedAny();"
        " return r && r.clock && Math.abs(r.clock.offsetMs - want) < 2500; }",
        arg=offset_ms,
    )

    # Offline in the open page: the code is made at the server's time, and it verifies.
    page.context.set_offline(True)
    code = _offline_shown(page)
    step = int(code.split(":")[2])
    assert abs(step - int(time.time() // 30)) <= 1
    assert abs(step - int((time.time() + skew_s) // 30)) >= 8  # not the phone's own step
    assert scan_live(pages_server, inst, code)[0] == 200

    # A new tab opened with no network: the offset stored with the credential corrects it too.
    page.close()
    page = _new_page(b)
    page.clock.install(time=time.time() + skew_s)
    page.goto(b.base + "/app/")
    page.wait_for_selector("body[data-ready=yes]")
    code2 = _offline_shown(page)
    assert code2 != code and abs(int(code2.split(":")[2]) - int(time.time() // 30)) <= 1
    assert page.is_visible("#clock")
    page.context.set_offline(False)
    status, body = scan_live(pages_server, inst, code2)
    assert status == 200, body
    _clean(b)


PROBE_FAILS = {
    # a basement's dead uplink: the request goes nowhere
    "unreachable": lambda route: route.abort("internetdisconnected"),
    # a captive portal: 200 with its own page instead of the service's answer
    "portal": lambda route: route.fulfill(status=200, content_type="text/html", body="<h1>Wi-Fi login</h1>"),
}


@pytest.mark.slow
@pytest.mark.parametrize("network", sorted(PROBE_FAILS))
def test_online_but_the_service_unreachable_still_shows_the_offline_code(yb, device, pages_server, network):
    """navigator.onLine says only that an interface is up: a phone "online" in a basement whose
    requests go nowhere (or to a captive portal) opens the app, probes /healthz, and shows its offline
    code, not the login."""
    p = yb.person(activate=False)
    b = device("zh-CN", 320, 720)
    _, cred = _enrolled(b, p)
    _worker_ready(b.page)
    b.page.close()
    context = b.page.context
    context.route("**/healthz", PROBE_FAILS[network])
    try:
        page = _new_page(b)
        page.goto(b.base + "/app/")
        page.wait_for_selector("body[data-ready=yes]")
        assert page.evaluate("navigator.onLine") is True
        code = _offline_shown(page)
        assert code.startswith(f"YO1:{cred['credential_id']}:")
        assert page.is_visible("#offline-login") and page.is_hidden("#tabs")
    finally:
        context.unroute("**/healthz")
    # The service answers again: a fresh start without a session asks for the login, as before.
    page.close()
    page = _new_page(b)
    page.goto(b.base + "/app/")
    page.wait_for_selector("body[data-ready=yes]")
    assert page.is_visible("#screen-activate") and page.locator("#qr svg").count() == 0


@pytest.mark.slow
def test_a_record_of_the_earlier_page_is_rewritten_with_the_digest(yb, device, pages_server):
    """A phone enrolled by the page before the digest kept the full psn_no: the first look-up by its
    person replaces it with the digest; another person's look-up finds nothing and changes nothing."""
    p = yb.person(activate=False)
    b = device("zh-CN", 320, 720)
    _enrolled(b, p)
    page = b.page
    device_id = page.evaluate("localStorage.getItem('yb.app.device')")
    assert device_id
    got = page.evaluate(
        """async ([psn, dev]) => {
          const m = await import("/app/offline.js");
          const db = await new Promise((ok, ko) => {
            const r = indexedDB.open("yb.app.offline", 1);
            r.onsuccess = () => ok(r.result);
            r.onerror = () => ko(r.error);
          });
          const put = (rec) => new Promise((ok, ko) => {
            const t = db.transaction("credential", "readwrite");
            t.objectStore("credential").put(rec, "device");
            t.oncomplete = ok;
            t.onerror = () => ko(t.error);
          });
          const get = () => new Promise((ok, ko) => {
            const r = db.transaction("credential").objectStore("credential").get("device");
            r.onsuccess = () => ok(r.result);
            r.onerror = () => ko(r.error);
          });
          const old = { ...(await get()) };
          delete old.psnHash;
          old.psn = psn;
          await put(old);
          const other = await m.stored("psn_someone_else", dev);
          const otherKept = (await get()).psn === psn;
          const mine = await m.stored(psn, dev);
          const after = await get();
          await put(old);  // again the earlier page's record: the start without a session reads it
          const any = await m.storedAny();
          const afterAny = await get();
          db.close();
          return { other, otherKept, mine: !!mine,
                   fields: Object.keys(after).filter((k) => k !== "key").sort(), hash: after.psnHash,
                   anyHash: any.psnHash, anyPsn: "psn" in any, storedPsn: "psn" in afterAny };
        }""",
        [p.psn_no, device_id],
    )
    assert got["other"] is None and got["otherKept"] is True
    assert got["mine"] is True and "psn" not in got["fields"] and "psnHash" in got["fields"]
    assert got["hash"] == hashlib.sha256(f"yb-psn:{p.psn_no}".encode()).hexdigest()
    assert got["anyHash"] == got["hash"] and got["anyPsn"] is False and got["storedPsn"] is False
