"""Offline-credential helpers: create one through the API, make codes, scan at a fixed server time."""

from __future__ import annotations

import base64
import hashlib
import hmac
from contextlib import contextmanager
from typing import Any

from tests.support import Person, Yb


def independent_code(credential_id: str, secret: str, unix_time: float, seq: int = 0) -> str:
    """A YO1 generator written from the contract alone (docs/voucher.md), not importing ours."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    text = f"YO1:{credential_id}:{int(unix_time // 30)}:{seq}"
    mac = base64.b32encode(hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()[:10])
    return text + ":" + mac.decode().rstrip("=")


def new_credential(yb: Yb, p: Person, device_id: str | None = None, status: int = 201) -> dict:
    resp = yb.as_user(p, "POST", "/offline-credentials", {"device_id": device_id or p.device_id})
    assert resp.status_code == status, resp.get_data(as_text=True)
    return resp.get_json()


class _Clock:
    def __init__(self, real: Any, at: float) -> None:
        self._real, self.at = real, at

    def time(self) -> float:
        return self.at

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@contextmanager
def server_time(monkeypatch: Any, at: float):  # type: ignore[no-untyped-def]
    """The verifier's clock (voucher.verification's `time`) fixed at `at`."""
    from voucher import verification

    clock = _Clock(verification.time, at)
    with monkeypatch.context() as m:
        m.setattr(verification, "time", clock)
        yield clock
