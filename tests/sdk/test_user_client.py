"""UserClient against a real local HTTP server: refresh rotation on 401, paths and bodies."""

from __future__ import annotations

import pytest

from yibao_client import AdminClient, Tokens, UserClient, errors

from .fakeserver import Reply, Seen, problem


def auth_server(server, *, refresh_reply=None):
    """Accepts only access token "new"; refreshes r1 -> (new, r2)."""
    refreshes: list[Seen] = []

    def respond(seen: Seen):
        if seen.target == "/api/v1/sessions/refresh":
            refreshes.append(seen)
            return refresh_reply or Reply(
                200, {"access_token": "new", "refresh_token": "r2", "expires_in": 900}
            )
        if seen.headers.get("authorization") != "Bearer new":
            return problem(401, "TOKEN_INVALID")
        return Reply(200, {"psn_no": "psn_1", "balance_fen": 500})

    server.default = respond
    return refreshes


def test_expired_access_token_is_refreshed_once_and_the_call_repeated(server, sleeps):
    refreshes = auth_server(server)
    saved: list[Tokens] = []
    app = UserClient(
        server.url, access_token="old", refresh_token="r1", on_tokens=saved.append, sleep=sleeps.append
    )
    assert app.account()["balance_fen"] == 500
    assert [s.target for s in server.requests] == [
        "/api/v1/accounts/me",
        "/api/v1/sessions/refresh",
        "/api/v1/accounts/me",
    ]
    assert refreshes[0].json == {"refresh_token": "r1"} and "authorization" not in refreshes[0].headers
    assert (app.access_token, app.refresh_token) == ("new", "r2")
    assert saved == [Tokens("new", "r2", None)]
    # The next call uses the new token directly.
    app.account()
    assert len(refreshes) == 1 and server.requests[-1].headers["authorization"] == "Bearer new"


def test_refresh_happens_only_once_per_call(server, sleeps):
    refreshes = auth_server(
        server, refresh_reply=Reply(200, {"access_token": "still-bad", "refresh_token": "r2"})
    )
    app = UserClient(server.url, access_token="old", refresh_token="r1", sleep=sleeps.append)
    with pytest.raises(errors.TokenInvalid):
        app.account()
    assert len(refreshes) == 1 and len(server.requests) == 3


def test_a_reused_refresh_token_ends_the_login(server, sleeps):
    auth_server(server, refresh_reply=problem(401, "REFRESH_TOKEN_REUSED"))
    app = UserClient(server.url, access_token="old", refresh_token="r1", sleep=sleeps.append)
    with pytest.raises(errors.RefreshTokenReused):
        app.voucher()
    assert app.access_token is None and app.refresh_token is None


def test_without_refresh_token_the_401_is_raised(server, sleeps):
    auth_server(server)
    with pytest.raises(errors.TokenInvalid):
        UserClient(server.url, access_token="old", sleep=sleeps.append).account()
    assert len(server.requests) == 1


def test_activation_keeps_the_tokens(server, sleeps):
    server.then(
        Reply(201, {"identity_proof": "proof-1", "expires_in": 300}),
        Reply(201, {"psn_no": "psn_1", "access_token": "a1", "refresh_token": "r1", "expires_in": 900}),
        Reply(201, {"token": "t", "qr_content": "YB1:x", "expires_in": 60}),
    )
    app = UserClient(server.url, sleep=sleeps.append)
    proof = app.sandbox_proof("110105199003071239", "赵六", guardian_of="110105201503071234")
    app.activate("110105199003071239", "赵六", proof, "iphone-15-abc")
    app.voucher(qr="png")
    sandbox, activation, voucher = server.requests
    assert sandbox.json == {
        "id_number": "110105199003071239",
        "name": "赵六",
        "guardian_of": "110105201503071234",
    }
    assert "authorization" not in sandbox.headers and "authorization" not in activation.headers
    assert activation.json["identity_proof"] == "proof-1"
    assert app.psn_no == "psn_1" and voucher.headers["authorization"] == "Bearer a1"
    assert voucher.target == "/api/v1/vouchers?qr=png" and voucher.body == b""


CALLS = [
    (lambda u: u.voucher(on_behalf_of="psn_9"), "POST", "/api/v1/vouchers", {"on_behalf_of": "psn_9"}),
    (lambda u: u.revoke_vouchers(), "POST", "/api/v1/vouchers/revocations", None),
    (lambda u: u.usage("psn_9", limit=5), "GET", "/api/v1/vouchers/usage?psn_no=psn_9&limit=5", None),
    (lambda u: u.account(on_behalf_of="psn_9"), "GET", "/api/v1/accounts/me?on_behalf_of=psn_9", None),
    (lambda u: u.entries(limit=2, cursor=7), "GET", "/api/v1/accounts/me/entries?limit=2&cursor=7", None),
    (
        lambda u: u.pay_authorization("online_otc", "psn_9"),
        "POST",
        "/api/v1/pay-authorizations",
        {"purpose": "online_otc", "on_behalf_of": "psn_9"},
    ),
    (lambda u: u.get_order("po_1"), "GET", "/api/v1/payment-orders/po_1", None),
    (
        lambda u: u.bind("110105199003071239", "赵六", "parent"),
        "POST",
        "/api/v1/family/bindings",
        {"member_id_number": "110105199003071239", "member_name": "赵六", "relationship": "parent"},
    ),
    (lambda u: u.binding("fb_1"), "GET", "/api/v1/family/bindings/fb_1", None),
    (lambda u: u.approve_binding("fb_1"), "POST", "/api/v1/family/bindings/fb_1/approve", None),
    (lambda u: u.decline_binding("fb_1"), "POST", "/api/v1/family/bindings/fb_1/decline", None),
    (lambda u: u.end_binding("fb_1"), "DELETE", "/api/v1/family/bindings/fb_1", None),
    (
        lambda u: u.file_mutual_aid("psn_9", "parent"),
        "POST",
        "/api/v1/family/mutual-aid-filings",
        {"member_psn_no": "psn_9", "relationship": "parent"},
    ),
    (lambda u: u.approve_mutual_aid("mf_1"), "POST", "/api/v1/family/mutual-aid-filings/mf_1/approve", None),
    (lambda u: u.withdraw_mutual_aid("mf_1"), "DELETE", "/api/v1/family/mutual-aid-filings/mf_1", None),
]


@pytest.mark.parametrize(("call", "method", "target", "body"), CALLS)
def test_paths_and_bodies(server, sleeps, call, method, target, body):
    call(UserClient(server.url, access_token="a1", sleep=sleeps.append))
    seen = server.requests[0]
    assert (seen.method, seen.target, seen.json) == (method, target, body)
    assert seen.headers["authorization"] == "Bearer a1"


def test_lists_are_unwrapped(server, sleeps):
    server.then(
        Reply(200, {"bindings": [{"binding_id": "fb_1"}]}),
        Reply(200, {"filings": []}),
        Reply(200, {"events": [{"event": "requested"}]}),
    )
    u = UserClient(server.url, access_token="a1", sleep=sleeps.append)
    assert u.bindings() == [{"binding_id": "fb_1"}]
    assert u.mutual_aid_filings() == []
    assert u.binding_events() == [{"event": "requested"}]
    assert server.requests[2].target == "/api/v1/family/events"


def test_admin_client_sends_the_operator_token(server, sleeps):
    ops = AdminClient(server.url, "adm-token", sleep=sleeps.append)
    ops.create_person(
        name="赵六", id_number="110105199003071239", insurance_type="employee", insured_region="110000"
    )
    ops.update_person("psn_1", status="suspended")
    ops.set_webhook("org_1", "https://example.org/hook")
    create, patch, put = server.requests
    assert create.headers["authorization"] == "Bearer adm-token" and create.target == "/api/v1/admin/persons"
    assert (patch.method, patch.target, patch.json) == (
        "PATCH",
        "/api/v1/admin/persons/psn_1",
        {"status": "suspended"},
    )
    assert (put.method, put.target) == ("PUT", "/api/v1/admin/institutions/org_1/webhook")
    assert "adm-token" not in repr(ops)
