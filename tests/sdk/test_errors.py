"""Typed exceptions by problem code; non-problem answers."""

from __future__ import annotations

import json

import pytest

from yibao_client import errors

PROBLEM = {"content-type": "application/problem+json"}


def answer(status: int, code: str, **extra) -> errors.YibaoError:
    body = {"type": "urn:x", "title": code, "status": status, "code": code, "detail": "d", **extra}
    return errors.from_response(status, PROBLEM, json.dumps(body).encode())


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (401, "INSTITUTION_AUTH_FAILED", errors.InstitutionAuthFailed),
        (401, "TOKEN_INVALID", errors.TokenInvalid),
        (401, "REFRESH_TOKEN_REUSED", errors.RefreshTokenReused),
        (409, "IDEMPOTENCY_KEY_IN_USE", errors.IdempotencyKeyInUse),
        (422, "IDEMPOTENCY_KEY_REUSED", errors.IdempotencyKeyReused),
        (409, "VOUCHER_ALREADY_USED", errors.VoucherAlreadyUsed),
        (422, "VOUCHER_EXPIRED", errors.VoucherExpired),
        (409, "INSUFFICIENT_BALANCE", errors.InsufficientBalance),
        (409, "ORDER_STATE_CONFLICT", errors.OrderStateConflict),
        (409, "ORDER_EXPIRED", errors.OrderExpired),
        (403, "NOT_PERMITTED", errors.NotPermitted),
        (422, "VALIDATION_FAILED", errors.ValidationFailed),
        (503, "REPLAY_STORE_UNAVAILABLE", errors.ServiceUnavailable),
        (503, "DATABASE_UNAVAILABLE", errors.ServiceUnavailable),
        (409, "TRACE_CODE_ALREADY_SETTLED", errors.TraceCodeAlreadySettled),
        (404, "ORDER_NOT_FOUND", errors.NotFound),
    ],
)
def test_class_by_code(status, code, cls):
    err = answer(status, code)
    assert type(err) is cls and isinstance(err, errors.YibaoError)
    assert (err.status, err.code, err.detail) == (status, code, "d")


def test_families():
    assert isinstance(answer(409, "VOUCHER_ALREADY_USED"), errors.VoucherRefused)
    assert isinstance(answer(409, "ORDER_EXPIRED"), errors.OrderStateConflict)
    assert isinstance(answer(409, "TRACE_CODE_ALREADY_SETTLED"), errors.TraceCodeError)
    assert isinstance(answer(401, "REFRESH_TOKEN_REUSED"), errors.RefreshTokenInvalid)
    assert isinstance(answer(409, "IDEMPOTENCY_KEY_IN_USE"), errors.IdempotencyError)


def test_unknown_codes_are_plain_errors_except_503():
    err = answer(418, "SOMETHING_NEW")
    assert type(err) is errors.YibaoError and err.code == "SOMETHING_NEW"
    assert type(answer(503, "SOMETHING_NEW")) is errors.ServiceUnavailable


def test_fields_of_the_problem():
    err = answer(422, "VALIDATION_FAILED", errors={"items": {"0": {"quantity": ["Not a valid integer."]}}})
    assert err.errors == {"items": {"0": {"quantity": ["Not a valid integer."]}}}
    auth = answer(401, "INSTITUTION_AUTH_FAILED", reason="NONCE_REUSED", request_id="r-1")
    assert auth.reason == "NONCE_REUSED" and auth.request_id == "r-1"
    assert answer(401, "INSTITUTION_AUTH_FAILED").reason is None  # servers without reasons
    assert str(auth) == "401 INSTITUTION_AUTH_FAILED: d"


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"content-type": "text/html"}, b"<html>502 Bad Gateway</html>"),
        (PROBLEM, b"not json"),
        (PROBLEM, b'["a list"]'),
        (PROBLEM, b'{"no": "code"}'),
        ({}, b""),
        (PROBLEM, b"\xff\xfe"),
    ],
)
def test_non_problem_answers(headers, body):
    err = errors.from_response(502, headers, body)
    assert type(err) is errors.NonProblemResponse and err.code == "NON_PROBLEM_RESPONSE"
    assert err.status == 502 and err.body == body[:2048]
    proxy_503 = errors.from_response(503, headers, body)
    assert type(proxy_503) is errors.ServiceUnavailable and proxy_503.code == "NON_PROBLEM_RESPONSE"


def test_every_code_of_the_sdk_is_a_code_of_the_server(app):
    """The SDK's table names only codes the server has (no typos); the app registers every domain's."""
    from yibao.errors import MESSAGES

    assert set(errors.CODES) - set(MESSAGES) == set()
    for code, cls in errors.CODES.items():
        if MESSAGES[code][0] == 503:
            assert issubclass(cls, errors.ServiceUnavailable), code
