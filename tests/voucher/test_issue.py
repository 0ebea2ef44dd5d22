"""Issuance: claims, size, QR images, who may get a code."""

from __future__ import annotations

import base64
import io
import time

import pytest
import zxingcpp
from PIL import Image

from tests.support import problem
from voucher import qr
from voucher import token as tk

from .support import decode_part


def test_default_token_claims_and_no_pii(yb, vd):
    p = yb.person()
    body = vd.issue(p)
    assert set(body) >= {"token", "qr_content", "expires_at", "expires_in"}
    h, c, s = body["token"].split(".")
    header, claims = decode_part(h), decode_part(c)
    assert header == {"alg": "EdDSA", "kid": header["kid"], "typ": "vc+jwt"}
    assert set(claims) == {"iss", "aud", "sub", "iat", "exp", "jti"}
    assert claims["exp"] - claims["iat"] == 60
    assert 55 <= body["expires_in"] <= 60
    assert abs(claims["iat"] - time.time()) < 5
    assert len(tk.b64u_decode(s)) == 64
    for secret in (p.psn_no, p.id_number, p.name):
        assert secret not in body["token"] and secret not in str(claims)
    assert claims["sub"] == vd.sub_of(p)
    # The QR form holds the very same JWS.
    assert tk.split(body["qr_content"]).compact == body["token"]


def test_default_token_fits_qr_version_10_at_level_m(yb, vd):
    p = yb.person()
    for _ in range(5):
        body = vd.issue(p)
        assert body["qr_content"].startswith("YB1:")
        assert qr.version_for(body["qr_content"]) <= 10, len(body["qr_content"])
    # The plain compact JWS would not: byte mode at 10-M holds 213 bytes.
    assert len(body["token"]) > 213


def test_each_code_is_new(yb, vd):
    p = yb.person()
    a, b = vd.issue(p), vd.issue(p)
    assert decode_part(a["token"].split(".")[1])["jti"] != decode_part(b["token"].split(".")[1])["jti"]


@pytest.mark.parametrize("kind", ["png", "svg"])
def test_qr_image_as_data_uri_decodes_to_qr_content(yb, vd, kind):
    p = yb.person()
    body = vd.issue(p, query=f"qr={kind}")
    prefix = f"data:image/{'png' if kind == 'png' else 'svg+xml'};base64,"
    assert body["qr"].startswith(prefix)
    data = base64.b64decode(body["qr"][len(prefix) :])
    if kind == "png":
        found = zxingcpp.read_barcodes(Image.open(io.BytesIO(data)))
        assert [b.text for b in found] == [body["qr_content"]]
        assert found[0].ec_level == "M"
    else:
        assert data.startswith(b"<svg") and b"<path" in data


def test_unknown_qr_kind_is_a_validation_error(yb, vd):
    p = yb.person()
    resp = yb.as_user(p, "POST", "/vouchers?qr=gif")
    problem(resp, 422, "VALIDATION_FAILED")


def test_unknown_body_field_is_refused(yb):
    p = yb.person()
    problem(yb.as_user(p, "POST", "/vouchers", {"sub": "x"}), 422, "VALIDATION_FAILED")


def test_configurable_lifetime(app_config, database_url):
    from yibao import create_app

    app = create_app({**app_config, "VOUCHER_TTL": 120})
    try:
        from tests.support import Yb

        yb = Yb(app.test_client())
        p = yb.person()
        body = yb.as_user(p, "POST", "/vouchers").get_json()
        claims = decode_part(body["token"].split(".")[1])
        assert claims["exp"] - claims["iat"] == 120
    finally:
        app.extensions["yibao.db"]["engine"].dispose()


@pytest.mark.parametrize("ttl", [0, 301, 3600])
def test_lifetime_over_five_minutes_is_refused_at_start(app_config, ttl):
    from yibao import create_app

    with pytest.raises(RuntimeError, match="YIBAO_VOUCHER_TTL"):
        create_app({**app_config, "VOUCHER_TTL": ttl})


def test_without_token_no_code(client):
    problem(client.post("/api/v1/vouchers"), 401, "AUTHENTICATION_REQUIRED")


def test_suspended_person_gets_no_code(yb, vd):
    p = yb.person()
    _suspend(vd.app, p.psn_no)
    problem(yb.as_user(p, "POST", "/vouchers"), 403, "PERSON_SUSPENDED")


def test_not_activated_person_gets_no_code(app, yb, vd):
    """An access token for a person whose activation was undone (data repair) gets no code."""
    from yibao.db import db
    from yibao.registry.models import Person

    p = yb.person()
    with app.app_context(), db.uow() as uow:
        uow.session.query(Person).filter_by(psn_no=p.psn_no).update({"activated_at": None})
        uow.commit()
    problem(yb.as_user(p, "POST", "/vouchers"), 403, "NOT_ACTIVATED")


def test_on_behalf_without_binding_is_not_permitted(yb, vd):
    binder, member = yb.person(), yb.person()
    problem(yb.as_user(binder, "POST", "/vouchers", {"on_behalf_of": member.psn_no}), 403, "NOT_PERMITTED")


def test_on_behalf_of_self_is_an_own_code(yb, vd):
    p = yb.person()
    body = vd.issue(p, on_behalf_of=p.psn_no)
    assert "act" not in decode_part(body["token"].split(".")[1])


def _suspend(app, psn_no):
    from yibao.db import db
    from yibao.registry import services as registry

    with app.app_context(), db.uow() as uow:
        registry.set_person_status(uow, psn_no, "suspended")
        uow.commit()


def test_the_body_is_decoded_once(app, yb, vd, monkeypatch):
    """The shell decodes the JSON body (check_json_body); the argument parser reuses it."""
    import webargs.core

    p, inst = yb.person(), yb.institution()
    decoded: list[str] = []
    flask_loads, webargs_loads = app.json.loads, webargs.core.parse_json
    monkeypatch.setattr(app.json, "loads", lambda *a, **k: decoded.append("flask") or flask_loads(*a, **k))
    monkeypatch.setattr(
        webargs.core, "parse_json", lambda *a, **k: decoded.append("webargs") or webargs_loads(*a, **k)
    )
    resp = yb.as_user(p, "POST", "/vouchers", {"on_behalf_of": p.psn_no})
    assert (resp.status_code, decoded) == (201, ["flask"])
    qr_content = resp.get_json()["qr_content"]
    decoded.clear()
    resp = vd.scan(inst, qr_content)
    assert (resp.status_code, decoded) == (200, ["flask"])
    problem(yb.as_user(p, "POST", "/vouchers", {"on_behalf_of": 7}), 422, "VALIDATION_FAILED")
