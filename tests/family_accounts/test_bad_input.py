"""Issue 5's bad inputs: each gets its problem+json code, and no family row is written."""

from __future__ import annotations

from datetime import datetime

import pytest

from family_accounts import clock
from tests.support import make_id_number, problem
from yibao.identity.providers import SandboxIdentityProvider

from .support import birth_for_age


def test_binding_yourself(fam):
    me = fam.adult()
    before = fam.counts()
    problem(fam.bind(me, me, "sibling"), 422, "SELF_NOT_ALLOWED")
    assert fam.counts() == before


def test_person_not_in_registry(fam):
    me = fam.adult()
    ghost_id = make_id_number(birth="19700101")
    before = fam.counts()
    resp = fam.yb.as_user(
        me,
        "POST",
        "/family/bindings",
        {"member_id_number": ghost_id, "member_name": "李四", "relationship": "parent"},
    )
    problem(resp, 404, "MEMBER_NOT_FOUND")
    assert fam.counts() == before


def test_wrong_name_for_the_id_number_gets_the_same_answer(fam):
    """Not registered and wrong name answer alike: the endpoint cannot probe who is insured."""
    me, mother = fam.adult(), fam.adult()
    before = fam.counts()
    resp = fam.yb.as_user(
        me,
        "POST",
        "/family/bindings",
        {"member_id_number": mother.id_number, "member_name": "王五", "relationship": "parent"},
    )
    problem(resp, 404, "MEMBER_NOT_FOUND")
    assert fam.counts() == before


def test_sixth_member(fam):
    me = fam.adult()
    for _ in range(5):
        fam.pending(me, fam.adult(), "sibling")
    sixth = fam.adult()
    before = fam.counts()
    body = problem(fam.bind(me, sixth, "sibling"), 409, "FAMILY_LIMIT_REACHED")
    assert body["limit"] == 5
    assert fam.counts() == before


def test_sixth_member_as_a_child_with_a_valid_proof_keeps_the_proof_unspent(fam):
    me = fam.adult()
    for _ in range(5):
        fam.pending(me, fam.adult(), "sibling")
    child = fam.child(8)
    proof = fam.guardian_proof(me, child)
    before = fam.counts()
    problem(fam.bind(me, child, "child", guardian_proof=proof), 409, "FAMILY_LIMIT_REACHED")
    assert fam.counts() == before
    # The refusal came before the proof was spent: once a slot is free the same proof works.
    first = fam.yb.as_user(me, "GET", "/family/bindings").get_json()["bindings"][0]["binding_id"]
    fam.yb.as_user(me, "DELETE", f"/family/bindings/{first}")
    assert fam.bind(me, child, "child", guardian_proof=proof).status_code == 201


def test_approving_someone_elses_binding(yb, fam):
    son, mother, stranger = fam.adult(), fam.adult(), fam.adult()
    binding_id = fam.pending(son, mother)
    before = fam.counts()
    # The binder cannot consent for the member ...
    problem(yb.as_user(son, "POST", f"/family/bindings/{binding_id}/approve"), 403, "NOT_PERMITTED")
    problem(yb.as_user(son, "POST", f"/family/bindings/{binding_id}/decline"), 403, "NOT_PERMITTED")
    # ... and a third person does not even see it.
    problem(yb.as_user(stranger, "POST", f"/family/bindings/{binding_id}/approve"), 404, "BINDING_NOT_FOUND")
    problem(yb.as_user(stranger, "POST", f"/family/bindings/{binding_id}/decline"), 404, "BINDING_NOT_FOUND")
    problem(yb.as_user(stranger, "DELETE", f"/family/bindings/{binding_id}"), 404, "BINDING_NOT_FOUND")
    assert fam.counts() == before
    assert yb.as_user(son, "GET", f"/family/bindings/{binding_id}").get_json()["status"] == "pending"


def test_approving_twice(yb, fam):
    son, mother = fam.adult(), fam.adult()
    binding_id = fam.active(son, mother)
    before = fam.counts()
    body = problem(
        yb.as_user(mother, "POST", f"/family/bindings/{binding_id}/approve"), 409, "BINDING_NOT_PENDING"
    )
    assert body["binding_status"] == "active"
    problem(yb.as_user(mother, "POST", f"/family/bindings/{binding_id}/decline"), 409, "BINDING_NOT_PENDING")
    assert fam.counts() == before


def test_approving_an_unknown_binding(yb, fam):
    me = fam.adult()
    before = fam.counts()
    problem(yb.as_user(me, "POST", "/family/bindings/fb_doesnotexist/approve"), 404, "BINDING_NOT_FOUND")
    assert fam.counts() == before


def test_forged_guardian_proof(fam, app):
    parent, child = fam.adult(), fam.child(9)
    genuine = fam.guardian_proof(parent, child)
    head, payload, sig = genuine.split(".")
    forged_sig = ("A" if sig[0] != "A" else "B") + sig[1:]
    # Same claims signed with another key: what a forger without the provider's key can make.
    other = SandboxIdentityProvider("not-the-providers-secret-0123456789abcdef-xyz")
    signed_elsewhere = other.issue(id_number=parent.id_number, name=parent.name, guardian_of=child.id_number)
    before = fam.counts()
    for proof in (f"{head}.{payload}.{forged_sig}", signed_elsewhere, "not-a-proof"):
        problem(fam.bind(parent, child, "child", guardian_proof=proof), 422, "GUARDIAN_PROOF_INVALID")
    assert fam.counts() == before


def test_identity_proof_is_not_a_guardian_proof(fam):
    parent, child = fam.adult(), fam.child(9)
    plain = fam.yb.proof(parent.id_number, parent.name)  # a face-check proof, no guardianship stated
    before = fam.counts()
    problem(fam.bind(parent, child, "child", guardian_proof=plain), 422, "GUARDIAN_PROOF_INVALID")
    assert fam.counts() == before


def test_expired_guardian_proof(fam, app):
    parent, child = fam.adult(), fam.child(9)
    stale = SandboxIdentityProvider(app.config["SECRET_KEY"], ttl=-60)  # same key, already expired
    proof = stale.issue(id_number=parent.id_number, name=parent.name, guardian_of=child.id_number)
    before = fam.counts()
    problem(fam.bind(parent, child, "child", guardian_proof=proof), 422, "GUARDIAN_PROOF_INVALID")
    assert fam.counts() == before


def test_guardian_proof_for_another_child(fam):
    parent, child, other_child = fam.adult(), fam.child(9), fam.child(7)
    proof = fam.guardian_proof(parent, other_child)
    before = fam.counts()
    problem(fam.bind(parent, child, "child", guardian_proof=proof), 403, "GUARDIAN_PROOF_MISMATCH")
    assert fam.counts() == before


def test_guardian_proof_of_another_guardian(fam):
    parent, neighbour, child = fam.adult(), fam.adult(), fam.child(9)
    proof = fam.guardian_proof(neighbour, child)  # true for the neighbour, presented by the parent
    before = fam.counts()
    problem(fam.bind(parent, child, "child", guardian_proof=proof), 403, "GUARDIAN_PROOF_MISMATCH")
    assert fam.counts() == before


def test_guardian_proof_is_single_use(fam):
    parent, child = fam.adult(), fam.child(9)
    proof = fam.guardian_proof(parent, child)
    first = fam.bind(parent, child, "child", guardian_proof=proof)
    assert first.status_code == 201
    fam.yb.as_user(parent, "DELETE", f"/family/bindings/{first.get_json()['binding_id']}")
    before = fam.counts()
    problem(fam.bind(parent, child, "child", guardian_proof=proof), 422, "GUARDIAN_PROOF_INVALID")
    assert fam.counts() == before


def test_child_without_guardian_proof(fam):
    parent, child = fam.adult(), fam.child(12)
    before = fam.counts()
    problem(fam.bind(parent, child, "child"), 422, "GUARDIAN_PROOF_REQUIRED")
    assert fam.counts() == before


def test_guardian_proof_for_an_adult_is_refused(fam):
    parent, adult_child = fam.adult(birth="19600101"), fam.adult(birth="19900101")
    proof = fam.yb.proof(parent.id_number, parent.name, guardian_of=adult_child.id_number)
    before = fam.counts()
    problem(
        fam.bind(parent, adult_child, "child", guardian_proof=proof), 422, "GUARDIAN_PROOF_NOT_APPLICABLE"
    )
    assert fam.counts() == before


@pytest.mark.parametrize("relationship", ["parent", "spouse", "grandparent", "parent_in_law", "child_in_law"])
def test_a_minor_cannot_be_bound_as_anything_but_a_ward(fam, relationship):
    adult, child = fam.adult(), fam.child(10)
    proof = fam.guardian_proof(adult, child)
    before = fam.counts()
    problem(fam.bind(adult, child, relationship, guardian_proof=proof), 422, "RELATIONSHIP_NOT_ALLOWED")
    assert fam.counts() == before


@pytest.mark.parametrize("relationship", ["friend", "cousin", "uncle", "PARENT", "neighbour"])
def test_binding_relationship_outside_the_list(fam, relationship):
    me, other = fam.adult(), fam.adult()
    before = fam.counts()
    body = problem(fam.bind(me, other, relationship), 422, "RELATIONSHIP_NOT_ALLOWED")
    assert "parent_in_law" in body["allowed"]
    assert fam.counts() == before


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"member_id_number": "123", "member_name": "张三", "relationship": "parent"},
        {"member_id_number": "11010519491231002X", "member_name": "", "relationship": "parent"},
        {"member_id_number": "11010519491231002X", "member_name": "张三", "relationship": ""},
        {"member_id_number": "11010519491231002X", "member_name": "张三", "relationship": "parent", "x": 1},
        {"member_id_number": 110105, "member_name": "张三", "relationship": "parent"},
    ],
)
def test_malformed_binding_bodies(fam, body):
    me = fam.adult()
    before = fam.counts()
    problem(fam.yb.as_user(me, "POST", "/family/bindings", body), 422, "VALIDATION_FAILED")
    assert fam.counts() == before


def test_unauthenticated(client, fam):
    before = fam.counts()
    problem(client.post("/api/v1/family/bindings", json={}), 401, "AUTHENTICATION_REQUIRED")
    problem(client.get("/api/v1/family/bindings"), 401, "AUTHENTICATION_REQUIRED")
    problem(client.post("/api/v1/family/mutual-aid-filings", json={}), 401, "AUTHENTICATION_REQUIRED")
    assert fam.counts() == before


# --- mutual aid ---------------------------------------------------------------------------------


def _file(fam, holder, member_psn_no, relationship="parent"):
    return fam.yb.as_user(
        holder,
        "POST",
        "/family/mutual-aid-filings",
        {"member_psn_no": member_psn_no, "relationship": relationship},
    )


def test_mutual_aid_for_a_resident_holder_without_an_account(fam):
    resident, mother = fam.adult(insurance_type="resident"), fam.adult()
    before = fam.counts()
    problem(_file(fam, resident, mother.psn_no), 422, "HOLDER_HAS_NO_PERSONAL_ACCOUNT")
    assert fam.counts() == before


@pytest.mark.parametrize("relationship", ["parent_in_law", "child_in_law", "friend", "cousin", "uncle"])
def test_mutual_aid_relationship_outside_the_list(fam, relationship):
    holder, other = fam.adult(balance=1000), fam.adult()
    before = fam.counts()
    body = problem(_file(fam, holder, other.psn_no, relationship), 422, "RELATIONSHIP_NOT_ALLOWED")
    assert "parent_in_law" not in body["allowed"] and "grandchild" in body["allowed"]
    assert fam.counts() == before


def test_mutual_aid_for_yourself(fam):
    holder = fam.adult(balance=1000)
    before = fam.counts()
    problem(_file(fam, holder, holder.psn_no, "sibling"), 422, "SELF_NOT_ALLOWED")
    assert fam.counts() == before


def test_mutual_aid_for_an_unknown_person(fam):
    """Issue 10: no psn_no oracle. An unknown psn_no is answered like a known one (a pending filing
    nobody can approve); before, this was 404 MEMBER_NOT_FOUND."""
    holder = fam.adult(balance=1000)
    before = fam.counts()
    resp = _file(fam, holder, "psn_unknown000000000")
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["status"] == "pending"
    assert resp.get_json()["member"] == {
        "psn_no": "psn_unknown000000000",
        "name_masked": None,
        "id_number_masked": None,
    }
    assert fam.counts() == {**before, "mutual_aid_filings": before["mutual_aid_filings"] + 1}


def test_mutual_aid_filed_twice(fam):
    holder, mother = fam.adult(balance=1000), fam.adult()
    filing_id = fam.file_and_approve(holder, mother)
    before = fam.counts()
    body = problem(_file(fam, holder, mother.psn_no), 409, "MUTUAL_AID_FILING_EXISTS")
    assert body["filing_id"] == filing_id
    assert fam.counts() == before


def test_stranger_cannot_withdraw_or_see(yb, fam):
    holder, mother, stranger = fam.adult(balance=1000), fam.adult(), fam.adult()
    filing_id = fam.file_and_approve(holder, mother)
    before = fam.counts()
    problem(
        yb.as_user(stranger, "DELETE", f"/family/mutual-aid-filings/{filing_id}"),
        404,
        "MUTUAL_AID_FILING_NOT_FOUND",
    )
    assert fam.counts() == before
    listed = yb.as_user(holder, "GET", "/family/mutual-aid-filings").get_json()["filings"]
    assert listed[0]["status"] == "active"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"member_psn_no": "", "relationship": "parent"},
        {"member_psn_no": "psn_x", "relationship": "parent", "y": 2},
    ],
)
def test_malformed_filing_bodies(fam, body):
    holder = fam.adult(balance=1000)
    before = fam.counts()
    problem(fam.yb.as_user(holder, "POST", "/family/mutual-aid-filings", body), 422, "VALIDATION_FAILED")
    assert fam.counts() == before


@pytest.mark.parametrize("age", [0, 16, 17, 60])
def test_birth_for_age_helper_is_consistent(age):
    born = datetime.strptime(birth_for_age(age), "%Y%m%d").date()
    assert clock.age_on(born, clock.today()) == age
