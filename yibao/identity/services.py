"""Activation of the e-voucher: real-name proof, device binding, first session."""

from __future__ import annotations

import time
from typing import Any

from yibao import hooks
from yibao.auth import tokens
from yibao.db import UnitOfWork, utcnow
from yibao.errors import AppError
from yibao.redis_store import guard
from yibao.registry import services as registry
from yibao.registry.models import Person

from .providers import IdentityProvider, VerifiedProof


def consume_proof(redis_client: Any, proof: VerifiedProof, purpose: str) -> None:
    """Make a proof single-use: a second presentation is IDENTITY_PROOF_INVALID."""
    ttl = max(1, proof.expires_at - int(time.time()) + 60)
    with guard():
        fresh = redis_client.set(f"yb:proof:{purpose}:{proof.proof_id}", "1", nx=True, ex=ttl)
    if not fresh:
        raise AppError("IDENTITY_PROOF_INVALID")


def activate(
    uow: UnitOfWork,
    provider: IdentityProvider,
    redis_client: Any,
    *,
    id_number: str,
    name: str,
    identity_proof: str,
    device_id: str,
    secret: str,
    access_ttl: int,
    refresh_ttl: int,
) -> tuple[Person, tokens.TokenPair]:
    """Check the proof against the registry, bind the device and open a session."""
    proof = provider.verify_person(identity_proof, id_number=id_number, name=name)
    person = registry.person_by_id_number(uow, id_number)
    if person is None:
        raise AppError("PERSON_NOT_FOUND")
    if not registry.name_matches(person, name):
        raise AppError("IDENTITY_MISMATCH")
    if person.status != "active":
        raise AppError("PERSON_SUSPENDED")
    consume_proof(redis_client, proof, "activation")
    if person.activated_at is None:
        person.activated_at = utcnow()
    person.device_id = device_id
    sess = tokens.start_session(uow, person_id=person.id, device_id=device_id)
    pair = tokens.issue_pair(
        uow, sess, psn_no=person.psn_no, secret=secret, access_ttl=access_ttl, refresh_ttl=refresh_ttl
    )
    hooks.emit("person_activated", uow=uow, person=person)
    return person, pair
