"""Offline credentials and YO1 codes (issue 14): the credential lifecycle, verification order, attacks."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from tests.support import problem
from voucher import qr as qr_mod
from voucher.models import OfflineCredential, UsageRecord, VoucherUse
from yibao.auth.models import AuthSession
from yibao.db import db
from yibao_client import offline

from .offline_support import independent_code, new_credential, server_time
from .support import count_rows


def _usage(app, **filters):
    with app.app_context(), db.uow(readonly=True) as uow:
        return uow.session.query(UsageRecord).filter_by(**filters).order_by(UsageRecord.id).all()


def _code(cred: dict, at: float | None = None, seq: int = 0) -> str:
    return offline.Credential(cred["credential_id"], cred["secret"]).code(at=at, seq=seq)


def _set_status(app, p, status):
    from yibao.registry import services as registry

    with app.app_context(), db.uow() as uow:
        registry.set_person_status(uow, p.psn_no, status)
        uow.commit()


# --- credentials -------------------------------------------------------------------------------


def test_create_answers_the_secret_once_and_stores_it_encrypted(app, yb):
    p = yb.person()
    resp = yb.as_user(p, "POST", "/offline-credentials", {"device_id": p.device_id})
    assert resp.status_code == 201, resp.get_json()
    assert resp.headers["Cache-Control"] == "no-store"
    cred = resp.get_json()
    assert cred["period_s"] == 30 and cred["algorithm"] == "HMAC-SHA256" and cred["format"] == "YO1"
    assert len(cred["secret"]) == 52 and offline.decode_secret(cred["secret"])
    assert len(cred["credential_id"]) <= 32
    with app.app_context(), db.uow(readonly=True) as uow:
        row = uow.session.get(OfflineCredential, cred["credential_id"])
        assert cred["secret"] not in row.secret_enc and row.device_id == p.device_id
    listed = yb.as_user(p, "GET", "/offline-credentials").get_json()["items"]
    assert [i["credential_id"] for i in listed] == [cred["credential_id"]]
    assert listed[0]["status"] == "active" and "secret" not in listed[0]
    assert cred["secret"] not in yb.as_user(p, "GET", "/offline-credentials").get_data(as_text=True)


def test_secret_is_bound_to_its_id_as_associated_data(app, yb):
    """Swapping two rows' ciphertexts cannot make one credential verify with the other's secret."""
    from yibao import crypto

    p = yb.person()
    cred = new_credential(yb, p)
    with app.app_context(), db.uow(readonly=True) as uow:
        enc = uow.session.get(OfflineCredential, cred["credential_id"]).secret_enc
        with pytest.raises(Exception):  # noqa: B017, PT011
            crypto.decrypt(enc, purpose="voucher/offline-credential", aad="other-id")


def test_only_the_activated_device(yb):
    p = yb.person()
    problem(
        yb.as_user(p, "POST", "/offline-credentials", {"device_id": "some-other-phone"}),
        403,
        "DEVICE_NOT_ACTIVATED",
    )
    problem(yb.as_user(p, "POST", "/offline-credentials", {"device_id": "x"}), 422, "VALIDATION_FAILED")


def test_a_new_credential_replaces_the_device_s_previous_one(app, yb, vd):
    p, inst = yb.person(), yb.institution()
    old, new = new_credential(yb, p), new_credential(yb, p)
    problem(vd.scan(inst, _code(old)), 422, "VOUCHER_REVOKED")
    assert vd.scan(inst, _code(new)).status_code == 200
    items = yb.as_user(p, "GET", "/offline-credentials").get_json()["items"]
    assert {(i["credential_id"], i["status"], i["ended_reason"]) for i in items} == {
        (new["credential_id"], "active", None),
        (old["credential_id"], "ended", "replaced"),
    }


def test_the_database_refuses_two_active_credentials_for_one_device(app, yb):
    from sqlalchemy.exc import IntegrityError

    p = yb.person()
    cred = new_credential(yb, p)
    with app.app_context(), db.uow() as uow:
        row = uow.session.get(OfflineCredential, cred["credential_id"])
        uow.session.add(
            OfflineCredential(id="dup", person_id=row.person_id, device_id=row.device_id, secret_enc="x")
        )
        with pytest.raises(IntegrityError):
            uow.session.flush()


def test_delete_ends_one_and_others_ids_are_404(app, yb, vd):
    p, q, inst = yb.person(), yb.person(), yb.institution()
    cp, cq = new_credential(yb, p), new_credential(yb, q)
    problem(
        yb.as_user(p, "DELETE", f"/offline-credentials/{cq['credential_id']}"),
        404,
        "OFFLINE_CREDENTIAL_NOT_FOUND",
    )
    problem(yb.as_user(p, "DELETE", "/offline-credentials/no-such-id"), 404, "OFFLINE_CREDENTIAL_NOT_FOUND")
    assert vd.scan(inst, _code(cq)).status_code == 200  # q's credential untouched
    assert yb.as_user(p, "DELETE", f"/offline-credentials/{cp['credential_id']}").status_code == 204
    assert yb.as_user(p, "DELETE", f"/offline-credentials/{cp['credential_id']}").status_code == 204
    problem(vd.scan(inst, _code(cp)), 422, "VOUCHER_REVOKED")


def test_revocations_end_every_credential(yb, vd):
    p, inst = yb.person(), yb.institution()
    cred = new_credential(yb, p)
    assert yb.as_user(p, "POST", "/vouchers/revocations").status_code == 200
    problem(vd.scan(inst, _code(cred)), 422, "VOUCHER_REVOKED")
    assert yb.as_user(p, "GET", "/offline-credentials").get_json()["items"][0]["ended_reason"] == "revoked"


def test_activation_on_another_device_ends_them(yb, vd):
    p, inst = yb.person(), yb.institution()
    cred = new_credential(yb, p)
    yb.activate(p, device_id="new-phone-01")
    problem(vd.scan(inst, _code(cred)), 422, "VOUCHER_REVOKED")
    fresh = new_credential(yb, p)  # the new device gets its own
    assert vd.scan(inst, _code(fresh)).status_code == 200


def test_re_activation_on_the_same_device_keeps_it(yb, vd):
    p, inst = yb.person(), yb.institution()
    cred = new_credential(yb, p)
    yb.activate(p, device_id=p.device_id)
    assert vd.scan(inst, _code(cred)).status_code == 200


def test_suspension_ends_them_and_scans_answer_person_suspended(app, yb, vd):
    p, inst = yb.person(), yb.institution()
    cred = new_credential(yb, p)
    _set_status(app, p, "suspended")
    code = _code(cred)
    problem(vd.scan(inst, code), 403, "PERSON_SUSPENDED")
    problem(vd.scan(inst, code), 409, "VOUCHER_ALREADY_USED")  # consumed like a signed code
    _set_status(app, p, "active")
    problem(vd.scan(inst, _code(cred, seq=1)), 422, "VOUCHER_REVOKED")


# --- verification ------------------------------------------------------------------------------


def test_accepted_scan_gives_an_ec_token_and_an_offline_usage_item(app, yb, vd):
    p, inst = yb.person(balance=100), yb.institution()
    cred = new_credential(yb, p)
    resp = vd.scan(inst, _code(cred))
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["ec_token"].startswith("ec_") and body["person"]["psn_no"] == p.psn_no
    item = yb.as_user(p, "GET", "/vouchers/usage").get_json()["items"][0]
    assert item["kind"] == "offline" and item["result"] == "accepted"
    signed = vd.scan(inst, vd.issue(p)["qr_content"])
    assert signed.status_code == 200
    assert yb.as_user(p, "GET", "/vouchers/usage").get_json()["items"][0]["kind"] == "signed"


def test_the_independent_generator_is_accepted(yb, vd):
    p, inst = yb.person(), yb.institution()
    cred = new_credential(yb, p)
    now = time.time()
    for seq in (0, 1, 15):
        code = independent_code(cred["credential_id"], cred["secret"], now, seq)
        assert code == _code(cred, at=now, seq=seq)
        assert vd.scan(inst, code).status_code == 200, seq


def test_single_use_per_step_and_seq(yb, vd):
    p, inst = yb.person(), yb.institution()
    cred = new_credential(yb, p)
    code = _code(cred)
    assert vd.scan(inst, code).status_code == 200
    problem(vd.scan(inst, code), 409, "VOUCHER_ALREADY_USED")
    assert vd.scan(inst, _code(cred, seq=1)).status_code == 200


def test_redis_flush_then_replay_is_refused_from_the_durable_record(app, yb, vd, redis_client):
    p, inst = yb.person(), yb.institution()
    cred = new_credential(yb, p)
    code = _code(cred)
    assert vd.scan(inst, code).status_code == 200
    redis_client.flushdb()
    problem(vd.scan(inst, code), 409, "VOUCHER_ALREADY_USED")
    assert count_rows(app, VoucherUse, sub=cred["credential_id"]) == 1


@pytest.mark.parametrize("delta", [-2, 2, -3, 40])
def test_steps_two_or_more_periods_away_are_expired(yb, vd, monkeypatch, delta):
    p, inst = yb.person(), yb.institution()
    cred = new_credential(yb, p)
    now = 1_900_000_005.0
    with server_time(monkeypatch, now):
        problem(vd.scan(inst, _code(cred, at=now + 30 * delta)), 422, "VOUCHER_EXPIRED")


@pytest.mark.parametrize("delta", [-1, 0, 1])
def test_steps_one_period_away_are_accepted(yb, vd, monkeypatch, delta):
    p, inst = yb.person(), yb.institution()
    cred = new_credential(yb, p)
    now = 1_900_000_005.0
    with server_time(monkeypatch, now):
        assert vd.scan(inst, _code(cred, at=now + 30 * delta)).status_code == 200


def test_an_expired_step_is_consumed_all_the_same(yb, vd, monkeypatch):
    """Expiry comes after the MAC: consumption does not happen for an expired step (refused before)."""
    p, inst = yb.person(), yb.institution()
    cred = new_credential(yb, p)
    now = 1_900_000_005.0
    code = _code(cred, at=now + 60)
    with server_time(monkeypatch, now):
        problem(vd.scan(inst, code), 422, "VOUCHER_EXPIRED")
    with server_time(monkeypatch, now + 60):
        assert vd.scan(inst, code).status_code == 200  # not consumed by the expired attempt


# Phone clock skew. The phone's step is floor((t + skew) / 30), the server's floor(t / 30): with
# |skew| < 30 they differ by at most one step (always accepted); with |skew| = 31 by one step, or by
# two when the server's second within its step is >= 29 (skew +31) or < 1 (skew -31): then expired.
@pytest.mark.parametrize(
    ("skew", "phase", "status"),
    [
        (29, 0.0, 200),
        (29, 29.9, 200),
        (-29, 0.0, 200),
        (-29, 29.9, 200),
        (31, 10.0, 200),
        (31, 28.9, 200),
        (31, 29.0, 422),
        (31, 29.9, 422),
        (-31, 10.0, 200),
        (-31, 1.0, 200),
        (-31, 0.5, 422),
        (-31, 0.0, 422),
    ],
)
def test_phone_clock_skew(yb, vd, monkeypatch, skew, phase, status):
    p, inst = yb.person(), yb.institution()
    cred = new_credential(yb, p)
    now = 63_333_333 * 30 + phase
    with server_time(monkeypatch, now):
        resp = vd.scan(inst, _code(cred, at=now + skew))
    if status == 200:
        assert resp.status_code == 200, resp.get_json()
    else:
        problem(resp, 422, "VOUCHER_EXPIRED")


def test_wrong_mac_is_refused_audited_against_the_credential_and_not_consumed(app, yb, vd):
    p, inst = yb.person(), yb.institution()
    cred = new_credential(yb, p)
    code = _code(cred)
    mac = code.rsplit(":", 1)[1]
    forged = code[: -len(mac)] + ("A" if mac[0] != "A" else "B") + mac[1:]
    problem(vd.scan(inst, forged), 422, "VOUCHER_SIGNATURE_INVALID")
    [rec] = _usage(app, credential_id=cred["credential_id"])
    assert rec.kind == "offline" and rec.code == "VOUCHER_SIGNATURE_INVALID" and rec.person_id is not None
    assert vd.scan(inst, code).status_code == 200  # the real code was not consumed


def test_mac_of_another_credential(yb, vd):
    p, q, inst = yb.person(), yb.person(), yb.institution()
    cp, cq = new_credential(yb, p), new_credential(yb, q)
    now = time.time()
    mac_of_q = _code(cq, at=now).rsplit(":", 1)[1]
    mixed = _code(cp, at=now).rsplit(":", 1)[0] + ":" + mac_of_q
    problem(vd.scan(inst, mixed), 422, "VOUCHER_SIGNATURE_INVALID")
    # q's secret with p's id: the MAC covers the id
    forged = offline.make_code(cp["credential_id"], cq["secret"], step=offline.step_at(now))
    problem(vd.scan(inst, forged), 422, "VOUCHER_SIGNATURE_INVALID")


def test_unknown_credential(app, yb, vd):
    inst = yb.institution()
    code = offline.make_code("nobody-here", "A" * 52, step=offline.step_at(time.time()))
    problem(vd.scan(inst, code), 422, "VOUCHER_SIGNATURE_INVALID")
    [rec] = _usage(app, kind="offline")
    assert rec.person_id is None


def test_an_ended_credential_is_revoked_before_the_mac_is_looked_at(yb, vd):
    p, inst = yb.person(), yb.institution()
    cred = new_credential(yb, p)
    yb.as_user(p, "DELETE", f"/offline-credentials/{cred['credential_id']}")
    bad_mac = _code(cred).rsplit(":", 1)[0] + ":" + "A" * 16
    problem(vd.scan(inst, bad_mac), 422, "VOUCHER_REVOKED")


def test_a_later_rule_still_consumes_the_code(yb, vd):
    """Valid MAC, in the window: consumed even when the region rule refuses it."""
    p = yb.person(region="532900")
    far = yb.institution(region="110100")
    cred = new_credential(yb, p)
    code = _code(cred)
    problem(vd.scan(far, code), 403, "REGION_NOT_COVERED")
    problem(vd.scan(yb.institution(), code), 409, "VOUCHER_ALREADY_USED")


def test_scope_rule_applies(yb, vd):
    p, inst = yb.person(insurance_type="resident"), yb.institution()
    cred = new_credential(yb, p)
    problem(vd.scan(inst, _code(cred), business_type="02121"), 403, "SCOPE_NOT_ALLOWED")


def test_designation_is_checked_first_and_does_not_consume(yb, vd):
    p, inst = yb.person(), yb.institution()
    cred = new_credential(yb, p)
    code = _code(cred)
    problem(vd.scan(inst, code, business_type="01301"), 403, "INSTITUTION_NOT_DESIGNATED")
    assert vd.scan(inst, code).status_code == 200


VALID_ID = "AbC_-09xyzAbC_-0"
MAC = "A" * 16


@pytest.mark.parametrize(
    "content",
    [
        "YO1:",
        f"YO1:{VALID_ID}",
        f"YO1:{VALID_ID}:63333333",
        f"YO1:{VALID_ID}:63333333:0",
        f"YO1:{VALID_ID}:63333333:0:{MAC}:extra",
        f"YO1::63333333:0:{MAC}",
        f"YO1:{VALID_ID}:063333333:0:{MAC}",
        f"YO1:{VALID_ID}:-63333333:0:{MAC}",
        f"YO1:{VALID_ID}:+63333333:0:{MAC}",
        f"YO1:{VALID_ID}:6333x333:0:{MAC}",
        f"YO1:{VALID_ID}:６３３３３３３３:0:{MAC}",
        f"YO1:{VALID_ID}:63333333:16:{MAC}",
        f"YO1:{VALID_ID}:63333333:-1:{MAC}",
        f"YO1:{VALID_ID}:63333333:01:{MAC}",
        f"YO1:{VALID_ID}:63333333:00:{MAC}",
        f"YO1:{VALID_ID}:63333333: 1:{MAC}",
        f"YO1:{VALID_ID}:63333333:0:{MAC[:-1]}",
        f"YO1:{VALID_ID}:63333333:0:{MAC}A",
        f"YO1:{VALID_ID}:63333333:0:{MAC.lower()}",
        f"YO1:{VALID_ID}:63333333:0:{MAC[:-1]}1",
        f"YO1:{VALID_ID}:63333333:0:{MAC[:-2]}==",
        f"YO1:{VALID_ID}:63333333:0:{MAC}\n",
        f"YO1:{VALID_ID}:63333333:0:{MAC}\x00",
        f"YO1:{VALID_ID}\x00:63333333:0:{MAC}",
        f"YO1:{'a' * 33}:63333333:0:{MAC}",
        f"YO1:{VALID_ID}:{'9' * 13}:0:{MAC}",
        f"YO1:{VALID_ID}:63333333:0:{MAC}" + "A" * 4000,
        f"YO1:id.with.dots:63333333:0:{MAC}",
        f"yo1:{VALID_ID}:63333333:0:{MAC}",
    ],
)
def test_malformed_shapes(app, yb, vd, content):
    resp = vd.scan(yb.institution(), content)
    if "\x00" in content:  # the shell refuses NUL anywhere in a JSON body before the verifier sees it
        assert resp.status_code in (400, 422), resp.get_json()
        assert resp.get_json()["code"] in ("VOUCHER_MALFORMED", "VALIDATION_FAILED", "NUL_NOT_ALLOWED")
        return
    problem(resp, 400, "VOUCHER_MALFORMED")


def test_nul_reaches_the_parser_as_malformed():
    from voucher import offline as server_offline
    from voucher.errors import Refusal

    for content in (f"YO1:{VALID_ID}:63333333:0:{MAC}\x00", f"YO1:{VALID_ID}\x00:1:0:{MAC}"):
        with pytest.raises(Refusal) as exc:
            server_offline.parse(content)
        assert exc.value.code == "VOUCHER_MALFORMED"


# --- size --------------------------------------------------------------------------------------


def test_issued_codes_render_at_qr_version_4_or_less_level_m(yb):
    """Ids are 16 upper-case base32 characters, so the whole code is QR alphanumeric (voucher/qr.py)."""
    p = yb.person()
    cred = new_credential(yb, p)
    assert set(cred["credential_id"]) <= set(qr_mod.ALNUM)
    far_future = _code(cred, at=10**11, seq=15)  # 10-digit step, year 5138
    for code in (_code(cred), far_future):
        assert set(code) <= set(qr_mod.ALNUM)
        assert qr_mod.version_for(code) <= 4, (code, qr_mod.version_for(code))
        assert qr_mod.png(code).startswith(b"\x89PNG") and len(qr_mod.matrix(code)) <= 4 * 4 + 17
    assert qr_mod.version_for(_code(cred)) == 3


def test_a_creation_that_loses_the_race_ends_the_winner_and_inserts_again(app, yb, vd, monkeypatch):
    """Between ending the device's credential and inserting the new one, another creation for the
    same device lands: the unique partial index refuses the insert, the retry ends it and wins."""
    from voucher import credentials

    p, inst = yb.person(), yb.institution()
    real_end, calls = credentials.end_where, []

    def end_then_compete(uow, reason, *criteria):
        n = real_end(uow, reason, *criteria)
        if not calls:
            calls.append(reason)
            sess = uow.session
            pid = sess.scalar(select(AuthSession.person_id).where(AuthSession.device_id == p.device_id))
            sess.add(OfflineCredential(id="COMPETITOR", person_id=pid, device_id=p.device_id, secret_enc="x"))
            sess.flush()
        return n

    monkeypatch.setattr(credentials, "end_where", end_then_compete)
    cred = new_credential(yb, p)
    monkeypatch.undo()
    assert vd.scan(inst, _code(cred)).status_code == 200
    with app.app_context(), db.uow(readonly=True) as uow:
        assert uow.session.get(OfflineCredential, "COMPETITOR").ended_reason == "replaced"
