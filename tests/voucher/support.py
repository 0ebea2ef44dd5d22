"""Voucher test helpers: issue codes, scan them, forge tokens with our own key for claim-level attacks."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.support import Institution, Person, Yb
from voucher import token as tk
from voucher.claims import new_jti
from voucher.keys import KeyRing
from yibao.db import db

SCAN_FIELDS = {
    "operator_id": "op-001",
    "operator_name": "王药师",
    "device_id": "scanner-7",
}


class VoucherDriver:
    """Issue and scan vouchers through the API; forge tokens with the app's real signing key."""

    def __init__(self, yb: Yb, app: Any) -> None:
        self.yb = yb
        self.app = app
        self._biz = 0

    def issue(self, p: Person, *, status: int = 201, query: str = "", **body: Any) -> dict:
        path = "/vouchers" + (f"?{query}" if query else "")
        resp = self.yb.as_user(p, "POST", path, body or None)
        assert resp.status_code == status, resp.get_data(as_text=True)
        return resp.get_json()

    def scan(self, inst: Institution, qr_content: Any, business_type: str | None = None, **extra: Any) -> Any:
        self._biz += 1
        body = {
            "qr_content": qr_content,
            "business_type": business_type or inst.services[0],
            **SCAN_FIELDS,
            "out_biz_no": f"biz-{self._biz}",
            **extra,
        }
        return self.yb.as_institution(inst, "POST", "/verifications", body)

    @property
    def keyring(self) -> KeyRing:
        return self.app.extensions["yibao.voucher.keyring"]

    def sub_of(self, p: Person) -> str:
        from voucher.models import Subject
        from yibao.registry.models import Person as PersonRow

        with self.app.app_context(), db.uow(readonly=True) as uow:
            pid = uow.session.query(PersonRow.id).filter_by(psn_no=p.psn_no).scalar()
            return uow.session.get(Subject, pid).sub

    def backdate_activation(self, p: Person) -> None:
        """Activation voids earlier codes; tests that forge old iat values move that mark back."""
        from voucher.models import Subject

        sub = self.sub_of(p)
        with self.app.app_context(), db.uow() as uow:
            uow.session.query(Subject).filter_by(sub=sub).update({"revoked_before_ms": 0})
            uow.commit()

    def forge(
        self,
        p: Person | None = None,
        *,
        header: dict | None = None,
        claims: dict | None = None,
        drop: tuple[str, ...] = (),
        raw_payload: bytes | None = None,
    ) -> str:
        """A compact JWS signed with our real current key: claim checks must hold even then."""
        with self.app.app_context():
            key = self.keyring.signing_key()
            now = int(time.time())
            base_claims = {
                "iss": tk.ISSUER,
                "aud": tk.AUDIENCE,
                "sub": self.sub_of(p) if p else "AAAAAAAA",
                "iat": now,
                "exp": now + 60,
                "jti": new_jti(0),
            }
            base_claims.update(claims or {})
            for k in drop:
                base_claims.pop(k, None)
            hdr = {"alg": tk.ALG, "kid": key.kid, "typ": tk.TYP, **(header or {})}
            parts = tk.Parts(tk.dumps(hdr), raw_payload or tk.dumps(base_claims), b"")
            sig = key.private.sign(parts.signing_input)  # type: ignore[union-attr]
            return tk.Parts(parts.header_raw, parts.payload_raw, sig).compact


def decode_part(part: str) -> dict:
    return json.loads(tk.b64u_decode(part))


def count_rows(app: Any, model: Any, **filters: Any) -> int:
    with app.app_context(), db.uow(readonly=True) as uow:
        q = uow.session.query(model)
        if filters:
            q = q.filter_by(**filters)
        return q.count()
