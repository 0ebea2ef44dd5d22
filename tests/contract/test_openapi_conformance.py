"""Issue 9 item 3: the OpenAPI document is the truth, checked by schemathesis against the app itself.

Every operation of /api/v1/openapi.json gets a bounded number of generated requests (valid ones and
ones that break the document), sent in-process over WSGI with real credentials: a real activated
user's access token, the operator token, and institution requests signed over the final method, path,
query and body (tests/contract/support.py). Each response must:

- not be a 5xx;
- have a status code, content type, headers and body the document declares for the operation;
- if it is an error, be application/problem+json.

One pytest test per operation, so a failure names its operation; every distinct failure of an
operation is listed (none is stopped at the first). Deterministic (derandomized) for CI.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .support import World, build_world, document_operations, examples_per_operation

PROBLEM_MIME = "application/problem+json"
OPERATIONS = document_operations()


def problem_json_errors(ctx: Any, response: Any, case: Any) -> bool | None:
    """An error answer is RFC 9457 problem+json, whatever the document says."""
    if response.status_code < 400:
        return None
    mime = (response.headers.get("content-type") or [""])[0].split(";")[0].strip()
    if mime != PROBLEM_MIME:
        raise Failure(
            operation=case.operation.label,
            title="Error response is not problem+json",
            message=f"{response.status_code} answered with Content-Type {mime!r}",
        )
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    problem_json_errors,
]


@pytest.fixture(scope="module")
def world(db_template, redis_url, tmp_path_factory, is_postgres):
    yield from build_world(db_template, redis_url, tmp_path_factory.mktemp("contract"), is_postgres)


@pytest.fixture(scope="module")
def schema(world: World):
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", world.app)


def _describe(case: Any, response: Any) -> str:
    body = response.text[:300] if response.text else ""
    request = f"    request: {case.method} {case.formatted_path} query={case.query!r} body={case.body!r}"
    return request[:600] + f"\n    response: {response.status_code} {body}"


AUTH_FAILURES = {
    "401 AUTHENTICATION_REQUIRED",
    "401 TOKEN_INVALID",
    "401 ADMIN_AUTH_FAILED",
    "401 INSTITUTION_AUTH_FAILED",
    "403 INSTITUTION_DISABLED",
}


def _answer_key(response: Any) -> str:
    code = ""
    if response.status_code >= 400:
        try:
            code = response.json().get("code", "")
        except Exception:
            code = "?"
    return f"{response.status_code} {code}".strip()


def test_every_operation_is_tested():
    assert len(OPERATIONS) >= 40  # the document lists every operation of every domain


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_conforms_to_the_document(world: World, schema: Any, method: str, path: str):
    operation = schema[path][method]
    security = operation.definition.raw.get("security", [])
    ends_session = (method, path) == ("DELETE", "/api/v1/sessions/current")
    failures: dict[str, str] = {}  # distinct failure title+message → one example of it
    sent = {"count": 0}
    answered: Counter[str] = Counter()  # status and problem code of every response

    def run_one(case: Any) -> None:
        headers = {**(case.headers or {}), **world.auth_headers(security)}
        response = case.call(headers=headers)
        sent["count"] += 1
        answered[_answer_key(response)] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:
            for failure in group.exceptions:
                key = f"{failure.title}: {failure.message}".strip()[:400]
                failures.setdefault(key, _describe(case, response))
        except Failure as failure:
            key = f"{failure.title}: {failure.message}".strip()[:400]
            failures.setdefault(key, _describe(case, response))
        if ends_session and response.status_code == 204:
            world.refresh_user()

    n = examples_per_operation()
    for mode, count in (
        (schemathesis.GenerationMode.POSITIVE, n),
        (schemathesis.GenerationMode.NEGATIVE, max(1, n // 2)),
    ):

        @settings(
            max_examples=count,
            derandomize=True,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            run_one(case)

        try:
            run()
        except Exception as exc:  # a generation problem (e.g. an unsatisfiable schema) is a failure too
            if "Unsatisfiable" in type(exc).__name__ and mode is schemathesis.GenerationMode.NEGATIVE:
                continue  # nothing in this operation can be made invalid: no negative case exists
            failures.setdefault(f"{mode.name} generation failed: {type(exc).__name__}: {exc}"[:400], "")

    assert sent["count"] > 0, f"{method} {path}: no request was generated"
    if security:  # the credentials work: not every answer is an authentication failure
        assert set(answered) - AUTH_FAILURES, f"{method} {path}: only {dict(answered)}"
    print(f"{method} {path}: {sent['count']} requests, {dict(answered)}")
    report = "\n".join(f"- {key}\n{example}" for key, example in failures.items())
    assert not failures, f"{method} {path}: {len(failures)} distinct failure(s)\n{report}"
