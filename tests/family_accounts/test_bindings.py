"""Bindings: consent of adults, guardianship of children, ending, expiry, the audit trail both sides see."""

from __future__ import annotations

from datetime import timedelta

from tests.support import problem


def test_adult_binding_is_pending_until_the_member_approves(yb, fam):
    son, mother = fam.adult(), fam.adult(birth="19550301")
    resp = fam.bind(son, mother, "parent")
    assert resp.status_code == 201
    body = resp.get_json()
    assert body["status"] == "pending" and body["role"] == "binder" and body["basis"] == "consent"
    assert body["pending_reason"] == "awaiting_member" and body["expires_at"]
    assert body["member"]["psn_no"] == mother.psn_no
    assert "*" in body["member"]["name_masked"] and "*" in body["member"]["id_number_masked"]
    assert mother.id_number not in resp.get_data(as_text=True)

    resp = yb.as_user(mother, "POST", f"/family/bindings/{body['binding_id']}/approve")
    assert resp.status_code == 200
    approved = resp.get_json()
    assert approved["status"] == "active" and approved["role"] == "member"
    assert approved["consented_at"] and approved["expires_at"] is None


def test_member_declines(yb, fam):
    son, mother = fam.adult(), fam.adult()
    binding_id = fam.pending(son, mother)
    resp = yb.as_user(mother, "POST", f"/family/bindings/{binding_id}/decline")
    assert resp.status_code == 200
    assert resp.get_json()["status"] == "declined" and resp.get_json()["ended_by"] == "member"
    # A declined binding can be asked for again (the slot and the pair are free).
    assert fam.bind(son, mother).status_code == 201


def test_child_bound_with_guardian_proof_is_active_at_once(yb, fam):
    parent, child = fam.adult(), fam.child(10)
    resp = fam.bind_child(parent, child)
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "active" and body["basis"] == "guardian" and body["activated_at"]


def test_sixteen_year_old_is_still_bound_by_guardian(fam):
    parent, child = fam.adult(), fam.child(16)
    resp = fam.bind_child(parent, child)
    assert resp.status_code == 201 and resp.get_json()["status"] == "active"


def test_seventeen_year_old_must_consent(fam):
    parent, teen = fam.adult(), fam.child(17)
    resp = fam.bind(parent, teen, "child")
    assert resp.status_code == 201 and resp.get_json()["status"] == "pending"


def test_grandparent_as_guardian_of_grandchild(fam):
    grandma, grandchild = fam.adult(birth="19500101"), fam.child(5)
    resp = fam.bind_child(grandma, grandchild, "grandchild")
    assert resp.status_code == 201 and resp.get_json()["status"] == "active"


def test_in_law_forms_are_allowed_for_bindings(fam):
    husband, mother_in_law = fam.adult(), fam.adult(birth="19520101")
    resp = fam.bind(husband, mother_in_law, "parent_in_law")
    assert resp.status_code == 201 and resp.get_json()["relationship"] == "parent_in_law"
    assert fam.bind(mother_in_law, husband, "child_in_law").status_code == 201


def test_member_may_be_bound_by_several_relatives(yb, fam):
    mother, son, daughter = fam.adult(birth="19550101"), fam.adult(), fam.adult()
    a = fam.pending(son, mother)
    b = fam.pending(daughter, mother)
    for binding_id in (a, b):
        assert yb.as_user(mother, "POST", f"/family/bindings/{binding_id}/approve").status_code == 200
    listed = yb.as_user(mother, "GET", "/family/bindings").get_json()["bindings"]
    assert {x["binding_id"] for x in listed} == {a, b}
    assert all(x["role"] == "member" and x["status"] == "active" for x in listed)


def test_both_sides_see_the_binding_and_its_events(yb, fam):
    son, mother, stranger = fam.adult(), fam.adult(), fam.adult()
    binding_id = fam.active(son, mother)
    for who, role in ((son, "binder"), (mother, "member")):
        listed = yb.as_user(who, "GET", "/family/bindings").get_json()["bindings"]
        assert [(x["binding_id"], x["role"], x["status"]) for x in listed] == [(binding_id, role, "active")]
        one = yb.as_user(who, "GET", f"/family/bindings/{binding_id}")
        assert one.status_code == 200 and one.get_json()["role"] == role
        events = yb.as_user(who, "GET", f"/family/bindings/{binding_id}/events").get_json()["events"]
        assert [(e["event"], e["actor_role"], e["status_after"]) for e in events] == [
            ("requested", "binder", "pending"),
            ("approved", "member", "active"),
        ]
    assert yb.as_user(stranger, "GET", "/family/bindings").get_json()["bindings"] == []
    problem(yb.as_user(stranger, "GET", f"/family/bindings/{binding_id}"), 404, "BINDING_NOT_FOUND")
    problem(yb.as_user(stranger, "GET", f"/family/bindings/{binding_id}/events"), 404, "BINDING_NOT_FOUND")
    assert yb.as_user(stranger, "GET", "/family/events").get_json()["events"] == []


def test_either_side_can_end_and_it_is_audited(yb, fam):
    son, mother, daughter = fam.adult(), fam.adult(), fam.adult()
    by_binder = fam.active(son, mother)
    by_member = fam.active(daughter, mother)
    resp = yb.as_user(son, "DELETE", f"/family/bindings/{by_binder}")
    assert resp.status_code == 200 and resp.get_json()["status"] == "ended"
    assert resp.get_json()["ended_by"] == "binder"
    resp = yb.as_user(mother, "DELETE", f"/family/bindings/{by_member}")
    assert resp.status_code == 200 and resp.get_json()["ended_by"] == "member"
    # Ending again is a no-op: same answer, no second event.
    before = fam.counts()
    assert yb.as_user(son, "DELETE", f"/family/bindings/{by_binder}").get_json()["status"] == "ended"
    assert fam.counts() == before
    events = yb.as_user(mother, "GET", "/family/events").get_json()["events"]
    ended = [(e["binding_id"], e["actor_role"]) for e in events if e["event"] == "ended"]
    assert sorted(ended) == sorted([(by_binder, "binder"), (by_member, "member")])


def test_binder_may_cancel_a_pending_request(yb, fam):
    son, mother = fam.adult(), fam.adult()
    binding_id = fam.pending(son, mother)
    assert yb.as_user(son, "DELETE", f"/family/bindings/{binding_id}").get_json()["status"] == "ended"
    problem(yb.as_user(mother, "POST", f"/family/bindings/{binding_id}/approve"), 409, "BINDING_NOT_PENDING")


def test_pending_binding_expires_after_seven_days(yb, fam, move_clock):
    son, mother = fam.adult(), fam.adult()
    binding_id = fam.pending(son, mother)
    move_clock(timedelta(days=6, hours=23))
    assert yb.as_user(mother, "GET", f"/family/bindings/{binding_id}").get_json()["status"] == "pending"
    move_clock(timedelta(days=7, seconds=1))
    body = problem(
        yb.as_user(mother, "POST", f"/family/bindings/{binding_id}/approve"), 409, "BINDING_NOT_PENDING"
    )
    assert body["binding_status"] == "expired"
    listed = yb.as_user(son, "GET", "/family/bindings").get_json()["bindings"]
    assert listed[0]["status"] == "expired" and listed[0]["ended_by"] == "system"
    events = yb.as_user(son, "GET", f"/family/bindings/{binding_id}/events").get_json()["events"]
    assert [(e["event"], e["actor_role"]) for e in events] == [("requested", "binder"), ("expired", "system")]
    # The expired request no longer holds the pair or a slot.
    assert fam.bind(son, mother).status_code == 201


def test_repeat_request_answers_binding_exists_with_its_id(fam):
    son, mother = fam.adult(), fam.adult()
    binding_id = fam.pending(son, mother)
    before = fam.counts()
    body = problem(fam.bind(son, mother), 409, "BINDING_EXISTS")
    assert body["binding_id"] == binding_id and body["binding_status"] == "pending"
    assert fam.counts() == before


def test_five_members_then_end_one_frees_a_slot(fam):
    me = fam.adult()
    relatives = [fam.adult() for _ in range(6)]
    ids = [fam.pending(me, r, "sibling") for r in relatives[:5]]
    problem(fam.bind(me, relatives[5], "sibling"), 409, "FAMILY_LIMIT_REACHED")
    assert fam.yb.as_user(me, "DELETE", f"/family/bindings/{ids[0]}").status_code == 200
    assert fam.bind(me, relatives[5], "sibling").status_code == 201


def test_chinese_problem_detail(yb, fam):
    me = fam.adult()
    resp = yb.as_user(me, "GET", "/family/bindings/fb_nope", headers={"Accept-Language": "zh-CN"})
    assert problem(resp, 404, "BINDING_NOT_FOUND")["detail"] == "亲情账户绑定不存在。"
