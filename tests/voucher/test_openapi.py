"""The OpenAPI document of the voucher routes tells the truth: optional body, schemas, constraints, codes."""

from __future__ import annotations

import pytest

from yibao.registry.models import BUSINESS_TYPES

VOUCHER_OPS = [
    ("/api/v1/vouchers", "post", "201"),
    ("/api/v1/vouchers/revocations", "post", "200"),
    ("/api/v1/vouchers/usage", "get", "200"),
    ("/api/v1/verifications", "post", "200"),
    ("/.well-known/jwks.json", "get", "200"),
]


@pytest.fixture
def spec(client):
    return client.get("/api/v1/openapi.json").get_json()


def _codes(op: dict) -> set[str]:
    return {c for r in op["responses"].values() if isinstance(r, dict) for c in r.get("x-problem-codes", [])}


def _schema(spec: dict, ref: dict) -> dict:
    return spec["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]


@pytest.mark.parametrize(("path", "method", "status"), VOUCHER_OPS)
def test_every_success_response_has_a_schema(spec, path, method, status):
    content = spec["paths"][path][method]["responses"][status]["content"]["application/json"]
    assert _schema(spec, content["schema"])["properties"]


def test_issue_body_is_optional(spec, yb):
    op = spec["paths"]["/api/v1/vouchers"]["post"]
    assert op["requestBody"]["required"] is False
    p = yb.person()
    for body in (None, {}):
        assert yb.as_user(p, "POST", "/vouchers", body).status_code == 201


def test_verification_constraints_are_documented(spec):
    op = spec["paths"]["/api/v1/verifications"]["post"]
    body = _schema(spec, op["requestBody"]["content"]["application/json"]["schema"])
    props = body["properties"]
    assert props["qr_content"]["maxLength"] == 4096
    assert sorted(props["business_type"]["enum"]) == sorted(BUSINESS_TYPES) and len(BUSINESS_TYPES) == 6
    assert (props["operator_id"]["minLength"], props["operator_id"]["maxLength"]) == (1, 64)
    assert props["operator_name"]["maxLength"] == 64 and props["device_id"]["maxLength"] == 128
    assert props["out_biz_no"]["maxLength"] == 64
    assert set(body["required"]) == set(props)


def test_usage_query_constraints_are_documented(spec):
    params = {p["name"]: p["schema"] for p in spec["paths"]["/api/v1/vouchers/usage"]["get"]["parameters"]}
    assert (params["limit"]["minimum"], params["limit"]["maximum"]) == (1, 100)
    assert params["cursor"]["pattern"] and params["cursor"]["maxLength"] <= 200


@pytest.mark.parametrize(
    ("path", "method", "codes"),
    [
        ("/api/v1/vouchers", "post", {"PERSON_SUSPENDED", "NOT_ACTIVATED", "NOT_PERMITTED"}),
        ("/api/v1/vouchers/usage", "get", {"USAGE_CURSOR_INVALID", "NOT_PERMITTED"}),
        (
            "/api/v1/verifications",
            "post",
            {
                "INSTITUTION_NOT_DESIGNATED",
                "VOUCHER_MALFORMED",
                "VOUCHER_SIGNATURE_INVALID",
                "VOUCHER_EXPIRED",
                "VOUCHER_REVOKED",
                "VOUCHER_ALREADY_USED",
                "REPLAY_STORE_UNAVAILABLE",
                "PERSON_SUSPENDED",
                "REGION_NOT_COVERED",
                "SCOPE_NOT_ALLOWED",
            },
        ),
    ],
)
def test_each_operation_documents_its_codes(spec, path, method, codes):
    assert codes <= _codes(spec["paths"][path][method])


def test_verification_answer_documents_warnings(spec):
    ok = spec["paths"]["/api/v1/verifications"]["post"]["responses"]["200"]["content"]["application/json"]
    schema = _schema(spec, ok["schema"])
    assert "warnings" in schema["required"]
    warnings = schema["properties"]["warnings"]
    assert warnings["type"] == "array" and "identity_velocity" in warnings["description"]
    finding = _schema(spec, warnings["items"])
    assert set(finding["required"]) >= {"rule_id", "kind", "evidence"}
