"""Test helpers: ID numbers, signed institution requests, activated users."""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import create_engine, text

from yibao.registry.validators import id_check_digit
from yibao_client import signing

ADMIN_TOKEN = "test-admin-token-0123456789"
TEST_SECRET = "test-secret-key-not-for-production-0123456789abcdef"
_seq = itertools.count(1)


def make_id_number(region: str = "532901", birth: str = "19800101", seq: int | None = None) -> str:
    """A valid 18-digit ID number; each call gives a new one unless seq is fixed."""
    n = next(_seq) if seq is None else seq
    first17 = f"{region}{birth}{n % 1000:03d}"
    return first17 + id_check_digit(first17)


_names = itertools.count(0)
_GIVEN = "一二三四五六七八九十甲乙丙丁戊己庚辛壬癸"


def make_name() -> str:
    n = next(_names)
    return "张" + _GIVEN[n % 20] + _GIVEN[(n // 20) % 20]


def sign_headers(
    key_id: str,
    secret: str,
    method: str,
    path: str,
    body: bytes,
    query: str = "",
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The X-Yb-* headers, signed by the SDK (yibao_client.signing) like an integrator would.

    Hostile-input tests need headers the SDK refuses to make (a malformed key id, nonce, timestamp or
    target): those get the same canonical string built by hand, signed with `signing.signature`.
    """
    target = f"{path}?{query}" if query else path
    try:
        return signing.sign(secret, method, target, body, key_id=key_id, timestamp=timestamp, nonce=nonce)
    except ValueError:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = nonce or signing.new_nonce()
        msg = "\n".join([method.upper(), target, ts, nonce, hashlib.sha256(body).hexdigest()])
        sig = signing.signature(secret, msg)
        return {"X-Yb-Key": key_id, "X-Yb-Timestamp": ts, "X-Yb-Nonce": nonce, "X-Yb-Signature": sig}


@dataclass
class Person:
    psn_no: str
    name: str
    id_number: str
    insurance_type: str
    access_token: str | None = None
    refresh_token: str | None = None
    device_id: str | None = None

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@dataclass
class Institution:
    org_id: str
    key_id: str
    secret: str
    region: str
    kind: str
    services: list[str] = field(default_factory=list)


class Yb:
    """Drives the API like the operator, the app and the scanners would."""

    def __init__(self, client: Any) -> None:
        self.client = client

    # operators
    def admin(self, method: str, path: str, json_body: Any = None, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", **kw.pop("headers", {})}
        return self.client.open(f"/api/v1/admin{path}", method=method, json=json_body, headers=headers, **kw)

    def person(
        self,
        *,
        insurance_type: str = "employee",
        region: str = "532900",
        balance: int | None = None,
        name: str | None = None,
        id_number: str | None = None,
        status: str = "active",
        birth: str = "19800101",
        activate: bool = True,
    ) -> Person:
        name = name or make_name()
        id_number = id_number or make_id_number(birth=birth)
        body: dict[str, Any] = {
            "name": name,
            "id_number": id_number,
            "insurance_type": insurance_type,
            "insured_region": region,
            "status": status,
        }
        if balance is not None:
            body["personal_account_balance_fen"] = balance
        resp = self.admin("POST", "/persons", body)
        assert resp.status_code == 201, resp.get_json()
        p = Person(resp.get_json()["psn_no"], name, id_number, insurance_type)
        if activate and status == "active":
            self.activate(p)
        return p

    def proof(self, id_number: str, name: str, guardian_of: str | None = None) -> str:
        body = {"id_number": id_number, "name": name}
        if guardian_of:
            body["guardian_of"] = guardian_of
        resp = self.client.post("/api/v1/sandbox/identity-proofs", json=body)
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()["identity_proof"]

    def activate(self, p: Person, device_id: str | None = None) -> Person:
        p.device_id = device_id or "dev-" + secrets.token_hex(4)
        resp = self.client.post(
            "/api/v1/activations",
            json={
                "id_number": p.id_number,
                "name": p.name,
                "identity_proof": self.proof(p.id_number, p.name),
                "device_id": p.device_id,
            },
        )
        assert resp.status_code == 201, resp.get_json()
        data = resp.get_json()
        p.access_token, p.refresh_token = data["access_token"], data["refresh_token"]
        return p

    def institution(
        self,
        *,
        kind: str = "pharmacy",
        region: str = "532900",
        services: list[str] | None = None,
        name: str = "测试药房",
        **extra: Any,
    ) -> Institution:
        services = (
            services
            or {
                "pharmacy": ["02121", "01302", "03131"],
                "hospital": ["01101", "01201", "01301"],
                "online_pharmacy": ["online_otc", "03131"],
            }[kind]
        )
        resp = self.admin(
            "POST",
            "/institutions",
            {"name": name, "kind": kind, "region": region, "services": services, **extra},
        )
        assert resp.status_code == 201, resp.get_json()
        d = resp.get_json()
        return Institution(d["org_id"], d["key_id"], d["secret"], region, kind, services)

    # callers
    def as_user(self, p: Person, method: str, path: str, json_body: Any = None, **kw: Any) -> Any:
        headers = {**p.auth, **kw.pop("headers", {})}
        return self.client.open(f"/api/v1{path}", method=method, json=json_body, headers=headers, **kw)

    def as_institution(
        self,
        inst: Institution,
        method: str,
        path: str,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        query: str = "",
        **sign_kw: Any,
    ) -> Any:
        body = b"" if json_body is None else json.dumps(json_body).encode()
        full = f"/api/v1{path}"
        h = sign_headers(inst.key_id, inst.secret, method, full, body, query=query, **sign_kw)
        if body:
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        url = f"{full}?{query}" if query else full
        return self.client.open(url, method=method, data=body, headers=h)


def problem(resp: Any, status: int, code: str) -> dict:
    """Assert a problem+json answer with this status and code; return its body."""
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    assert resp.mimetype == "application/problem+json", resp.mimetype
    body = resp.get_json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert body["detail"]
    return body


def reset_postgres(url: str) -> None:
    """Empty every table of the migrated PostgreSQL test database (the schema and its version stay, and
    the one-row tables the migrations create: supervision's rules version, which refuses TRUNCATE)."""
    engine = create_engine(url)
    with engine.begin() as conn:
        tables = conn.scalars(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename NOT IN ('alembic_version', 'supervision_rules_state')"
            )
        ).all()
        if tables:
            conn.execute(
                text(f"TRUNCATE {', '.join(f'public.{t}' for t in tables)} RESTART IDENTITY CASCADE")
            )
    engine.dispose()
