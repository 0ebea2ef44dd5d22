"""Field encryption (AES-GCM), blind indexes and masking of personal data."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

_VERSION = b"\x01"


@lru_cache(maxsize=64)
def derive_key(secret: str, purpose: str, length: int = 32) -> bytes:
    """A key for one purpose, derived from the master secret with HKDF-SHA256."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=b"yibao/v1", info=purpose.encode()).derive(
        secret.encode()
    )


def app_key(purpose: str) -> bytes:
    """Derive a purpose key from the current app's SECRET_KEY."""
    return derive_key(current_app.config["SECRET_KEY"], purpose)


def encrypt(plaintext: str, *, purpose: str, aad: str = "") -> str:
    """Encrypt with AES-256-GCM; the associated data binds the ciphertext to its row and field."""
    nonce = os.urandom(12)
    ct = AESGCM(app_key(purpose)).encrypt(nonce, plaintext.encode(), aad.encode())
    return base64.urlsafe_b64encode(_VERSION + nonce + ct).decode()


def decrypt(token: str, *, purpose: str, aad: str = "") -> str:
    """Decrypt a value made by encrypt()."""
    raw = base64.urlsafe_b64decode(token.encode())
    if raw[:1] != _VERSION:
        raise ValueError("unknown ciphertext version")
    return AESGCM(app_key(purpose)).decrypt(raw[1:13], raw[13:], aad.encode()).decode()


def blind_index(value: str, *, purpose: str) -> str:
    """A keyed hash for equality look-ups of encrypted values (unique constraints, search)."""
    return hmac.new(app_key(purpose), value.encode(), hashlib.sha256).hexdigest()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def mask_id_number(id_number: str) -> str:
    """110101199003071234 -> 110***********1234 (first 3 and last 4 shown)."""
    if len(id_number) <= 7:
        return "*" * len(id_number)
    return id_number[:3] + "*" * (len(id_number) - 7) + id_number[-4:]


def mask_name(name: str) -> str:
    """张三 -> 张*, 张小三 -> 张*三, 欧阳小明 -> 欧**明."""
    if len(name) <= 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]
