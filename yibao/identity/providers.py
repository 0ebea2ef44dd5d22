"""Identity providers: the interface a real face-verification service implements, and the sandbox."""

from __future__ import annotations

import hashlib
import hmac
import importlib
import secrets
import time
from dataclasses import dataclass
from typing import Protocol

import jwt

from yibao import crypto
from yibao.errors import AppError

PROOF_TYP = "yb-identity-proof"
GUARDIAN_TYP = "yb-guardian-proof"


@dataclass(frozen=True)
class VerifiedProof:
    """What a provider vouches for; `proof_id` lets the caller make the proof single-use."""

    proof_id: str
    expires_at: int


class IdentityProvider(Protocol):
    """A real-name verifier (face check against the public-security photo, or guardianship records)."""

    def verify_person(self, proof: str, *, id_number: str, name: str) -> VerifiedProof:
        """Raise IDENTITY_PROOF_INVALID for a bad proof, IDENTITY_MISMATCH for someone else's."""
        ...

    def verify_guardian(self, proof: str, *, guardian_id_number: str, child_id_number: str) -> VerifiedProof:
        """The proof states that the guardian is the legal guardian of the child."""
        ...


class SandboxIdentityProvider:
    """Signs and checks proofs itself; for development and tests only.

    Proofs carry keyed hashes of the ID number and name, never the values (no PII in tokens).
    """

    def __init__(self, secret: str, ttl: int = 300) -> None:
        self._key = crypto.derive_key(secret, "identity/sandbox-proof")
        self._secret = secret
        self.ttl = ttl

    def issue(self, *, id_number: str, name: str, guardian_of: str | None = None) -> str:
        now = int(time.time())
        claims = {
            "iss": "yibao-sandbox-idp",
            "sub": _keyed(self._secret, "id", id_number.strip().upper()),
            "nm": _keyed(self._secret, "name", name.strip()),
            "iat": now,
            "exp": now + self.ttl,
            "jti": secrets.token_urlsafe(12),
        }
        typ = PROOF_TYP
        if guardian_of:
            claims["gof"] = _keyed(self._secret, "id", guardian_of.strip().upper())
            typ = GUARDIAN_TYP
        return jwt.encode(claims, self._key, algorithm="HS256", headers={"typ": typ})

    def _decode(self, proof: str, typ: str) -> dict:
        try:
            if not isinstance(proof, str) or len(proof) > 2048:
                raise AppError("IDENTITY_PROOF_INVALID")
            if jwt.get_unverified_header(proof).get("typ") != typ:
                raise AppError("IDENTITY_PROOF_INVALID")
            return jwt.decode(
                proof,
                self._key,
                algorithms=["HS256"],
                issuer="yibao-sandbox-idp",
                options={"require": ["exp", "iat", "jti", "sub", "iss"]},
            )
        except jwt.PyJWTError as exc:
            raise AppError("IDENTITY_PROOF_INVALID") from exc

    def verify_person(self, proof: str, *, id_number: str, name: str) -> VerifiedProof:
        claims = self._decode(proof, PROOF_TYP)
        same_id = secrets.compare_digest(claims["sub"], _keyed(self._secret, "id", id_number.strip().upper()))
        same_name = secrets.compare_digest(claims.get("nm", ""), _keyed(self._secret, "name", name.strip()))
        if not (same_id and same_name):
            raise AppError("IDENTITY_MISMATCH")
        return VerifiedProof(claims["jti"], claims["exp"])

    def verify_guardian(self, proof: str, *, guardian_id_number: str, child_id_number: str) -> VerifiedProof:
        claims = self._decode(proof, GUARDIAN_TYP)
        same_guardian = secrets.compare_digest(
            claims["sub"], _keyed(self._secret, "id", guardian_id_number.strip().upper())
        )
        same_child = secrets.compare_digest(
            claims.get("gof", ""), _keyed(self._secret, "id", child_id_number.strip().upper())
        )
        if not (same_guardian and same_child):
            raise AppError("IDENTITY_MISMATCH")
        return VerifiedProof(claims["jti"], claims["exp"])


class DisabledIdentityProvider:
    """Production without a configured provider: every proof is refused (fail closed)."""

    def verify_person(self, proof: str, *, id_number: str, name: str) -> VerifiedProof:
        raise AppError("IDENTITY_PROOF_INVALID")

    def verify_guardian(self, proof: str, *, guardian_id_number: str, child_id_number: str) -> VerifiedProof:
        raise AppError("IDENTITY_PROOF_INVALID")


def _keyed(secret: str, label: str, value: str) -> str:
    return hmac.new(
        crypto.derive_key(secret, f"identity/{label}"), value.encode(), hashlib.sha256
    ).hexdigest()


def load_provider(config: dict) -> IdentityProvider:
    """IDENTITY_PROVIDER = 'sandbox' or 'package.module:factory' (called with the config)."""
    spec = config.get("IDENTITY_PROVIDER") or ("sandbox" if config["SANDBOX_IDENTITY_ENABLED"] else None)
    if spec == "sandbox":
        return SandboxIdentityProvider(config["SECRET_KEY"], config["IDENTITY_PROOF_TTL"])
    if spec:
        module, _, attr = spec.partition(":")
        return getattr(importlib.import_module(module), attr)(config)
    return DisabledIdentityProvider()


__all__ = ["IdentityProvider", "SandboxIdentityProvider", "VerifiedProof", "load_provider"]
