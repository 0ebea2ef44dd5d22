"""Helpers of the page tests: activate in the page, read the code shown, scan it as an institution."""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from typing import Any

from tests.browser_support import Browser
from tests.support import Institution, Person, Yb, sign_headers


def open_app(b: Browser) -> Any:
    page = b.page
    page.goto(b.base + "/app/", wait_until="networkidle")
    page.wait_for_selector("body[data-ready=yes]")
    return page


def activate_in_page(b: Browser, p: Person) -> str:
    """Activate through the page's form (sandbox face check); returns the qr_content shown."""
    page = open_app(b)
    page.fill("#act-name", p.name)
    page.fill("#act-id", p.id_number)
    page.click("#activate-form button[type=submit]")
    return shown_code(b)


def shown_code(b: Browser, previous: str | None = None) -> str:
    page = b.page
    page.wait_for_selector("#qr svg", timeout=10_000)
    if previous is not None:
        page.wait_for_function(
            "prev => document.getElementById('qr').dataset.qrContent !== prev", arg=previous, timeout=10_000
        )
    page.wait_for_selector("body[data-live=on]", timeout=10_000)  # the events loop holds its cursor
    return page.get_attribute("#qr", "data-qr-content")


def page_token(b: Browser) -> str:
    """The access token the page holds in its tab (to call the API as the same person)."""
    return b.page.evaluate("JSON.parse(sessionStorage.getItem('yb.app.session')).access")


def ask_binding(yb: Yb, binder: Person, member: Person) -> Any:
    """The binder asks to bind the member as a parent (the binding is pending until approved)."""
    body = {"member_id_number": member.id_number, "member_name": member.name, "relationship": "parent"}
    return yb.as_user(binder, "POST", "/family/bindings", body)


def _scan_body(qr_content: str, business_type: str) -> dict[str, str]:
    return {
        "qr_content": qr_content,
        "business_type": business_type,
        "operator_id": "OP01",
        "operator_name": "王药师",
        "device_id": "SCANNER-1",
        "out_biz_no": "T" + secrets.token_hex(6),
    }


def scan(yb: Yb, inst: Institution, qr_content: str, business_type: str = "02121") -> Any:
    """A signed verification by the test institution (tests/support.py sign_headers)."""
    return yb.as_institution(inst, "POST", "/verifications", _scan_body(qr_content, business_type))


def scan_live(base: str, inst: Institution, qr_content: str, business_type: str = "02121") -> tuple[int, Any]:
    """The same verification sent over HTTP to the live server the page talks to → (status, body)."""
    path = "/api/v1/verifications"
    body = json.dumps(_scan_body(qr_content, business_type)).encode()
    headers = sign_headers(inst.key_id, inst.secret, "POST", path, body)
    headers["Content-Type"] = "application/json"
    req = urllib.request.Request(base + path, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 (the test's own server)
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def person_id(app: Any, psn_no: str) -> int:
    from yibao.db import db
    from yibao.registry import services as registry

    with app.app_context(), db.uow(readonly=True) as uow:
        return registry.person_by_psn_no(uow, psn_no).id
