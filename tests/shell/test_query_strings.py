"""Unknown query parameters are ignored, as docs/conventions.md promises v1 clients (cache-busters, tracking
parameters a proxy adds); unknown body fields stay refused. Known query parameters keep their validation."""

from __future__ import annotations

from tests.support import problem


def test_an_unknown_query_parameter_is_ignored_on_reads_and_writes(yb):
    p = yb.person(balance=100)
    plain = yb.as_user(p, "GET", "/accounts/me/entries").get_json()
    busted = yb.as_user(p, "GET", "/accounts/me/entries", query_string={"_": "1733050000", "utm_source": "x"})
    assert busted.status_code == 200 and busted.get_json() == plain
    issued = yb.as_user(p, "POST", "/vouchers?qr=svg&_=1")
    assert issued.status_code == 201, issued.get_json()
    assert issued.get_json()["qr"]


def test_known_query_parameters_are_still_validated_and_unknown_body_fields_refused(yb):
    p = yb.person(balance=100)
    problem(
        yb.as_user(p, "GET", "/accounts/me/entries", query_string={"limit": "0", "_": "1"}),
        422,
        "VALIDATION_FAILED",
    )
    problem(yb.as_user(p, "POST", "/vouchers", {"colour": "red"}), 422, "VALIDATION_FAILED")
