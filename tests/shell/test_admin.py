"""Operator endpoints (/api/v1/admin/...) and their bad inputs: problem+json and nothing written."""

from __future__ import annotations

import json
import threading

import pytest

from tests.support import ADMIN_TOKEN, make_id_number, make_name, problem
from yibao.registry.validators import id_check_digit


def person_body(**over):
    body = {
        "name": make_name(),
        "id_number": make_id_number(),
        "insurance_type": "employee",
        "insured_region": "532900",
        "personal_account_balance_fen": 50000,
    }
    body.update(over)
    return {k: v for k, v in body.items() if v is not ...}


def inst_body(**over):
    body = {"name": "大理测试药房", "kind": "pharmacy", "region": "532901", "services": ["02121", "03131"]}
    body.update(over)
    return {k: v for k, v in body.items() if v is not ...}


# ---------------------------------------------------------------- persons


def test_create_and_show_person(yb, rows):
    body = person_body(name="张小三")
    resp = yb.admin("POST", "/persons", body)
    assert resp.status_code == 201, resp.get_json()
    psn_no = resp.get_json()["psn_no"]
    assert psn_no.startswith("psn_") and body["id_number"] not in psn_no
    assert rows()["persons"] == 1
    shown = yb.admin("GET", f"/persons/{psn_no}")
    assert shown.status_code == 200, shown.get_json()
    data = shown.get_json()
    assert data["name_masked"] == "张*三"
    assert data["id_number_masked"] == body["id_number"][:3] + "*" * 11 + body["id_number"][-4:]
    assert data["insurance_type"] == "employee" and data["has_personal_account"] is True
    assert data["status"] == "active" and data["activated"] is False
    assert body["id_number"] not in shown.get_data(as_text=True)


def test_resident_without_balance(yb):
    resp = yb.admin(
        "POST", "/persons", person_body(insurance_type="resident", personal_account_balance_fen=...)
    )
    assert resp.status_code == 201
    data = yb.admin("GET", f"/persons/{resp.get_json()['psn_no']}").get_json()
    assert data["has_personal_account"] is False


def test_create_suspended_person(yb):
    resp = yb.admin("POST", "/persons", person_body(status="suspended"))
    assert resp.status_code == 201
    assert yb.admin("GET", f"/persons/{resp.get_json()['psn_no']}").get_json()["status"] == "suspended"


def _bad_check_digit() -> str:
    good = make_id_number()
    return good[:17] + ("0" if good[17] != "0" else "1")


def _id_with(region: str = "532901", birth: str = "19800101") -> str:
    first17 = f"{region}{birth}123"
    return first17 + id_check_digit(first17)


BAD_PERSONS = [
    ("name", {"name": 123}),
    ("name", {"name": ""}),
    ("name", {"name": "张三<script>"}),
    ("name", {"name": "张" * 40}),
    ("name", {"name": ...}),
    ("id_number", {"id_number": ...}),
    ("id_number", {"id_number": _bad_check_digit()}),
    ("id_number", {"id_number": _id_with(birth="19800230")}),  # no 30 February
    ("id_number", {"id_number": _id_with(birth="21000101")}),  # born in the future
    ("id_number", {"id_number": _id_with(birth="18500101")}),
    ("id_number", {"id_number": _id_with(region="992901")}),  # no province 99
    ("id_number", {"id_number": make_id_number()[:17]}),  # 17 digits
    ("id_number", {"id_number": make_id_number() + "1"}),  # 19 digits
    ("id_number", {"id_number": "5329011980010112AX"}),
    ("id_number", {"id_number": 532901198001011234}),
    ("insurance_type", {"insurance_type": "gold"}),
    ("insurance_type", {"insurance_type": ...}),
    ("insured_region", {"insured_region": "999999"}),
    ("insured_region", {"insured_region": "53290"}),
    ("insured_region", {"insured_region": "5329000"}),
    ("insured_region", {"insured_region": 532900}),
    ("insured_region", {"insured_region": ...}),
    ("personal_account_balance_fen", {"personal_account_balance_fen": "100"}),
    ("personal_account_balance_fen", {"personal_account_balance_fen": 1.5}),
    ("personal_account_balance_fen", {"personal_account_balance_fen": -1}),
    ("personal_account_balance_fen", {"personal_account_balance_fen": 2**63}),
    ("personal_account_balance_fen", {"personal_account_balance_fen": True}),
    ("personal_account_balance_fen", {"insurance_type": "resident", "personal_account_balance_fen": 100}),
    ("status", {"status": "dead"}),
    ("nickname", {"nickname": "x"}),
]


@pytest.mark.parametrize("field,over", BAD_PERSONS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_PERSONS)])
def test_create_person_bad_input(yb, rows, field, over):
    before = rows()
    err = problem(yb.admin("POST", "/persons", person_body(**over)), 422, "VALIDATION_FAILED")
    assert field in err["errors"], err
    assert rows() == before


def test_create_person_not_an_object(yb, rows):
    for body in ([], [person_body()], "x", 5):
        err = problem(yb.admin("POST", "/persons", body), 422, "VALIDATION_FAILED")
        assert err["errors"]
    assert rows()["persons"] == 0


def test_duplicate_person(yb, rows):
    body = person_body()
    assert yb.admin("POST", "/persons", body).status_code == 201
    before = rows()
    problem(yb.admin("POST", "/persons", body), 409, "PERSON_EXISTS")
    # Same ID number under another name, and with a lower-case x or blanks, is the same person.
    problem(yb.admin("POST", "/persons", {**body, "name": make_name()}), 409, "PERSON_EXISTS")
    problem(
        yb.admin("POST", "/persons", {**body, "id_number": f" {body['id_number']} "}), 409, "PERSON_EXISTS"
    )
    assert rows() == before


def test_concurrent_duplicate_persons(app, rows):
    body = person_body()
    n = 8
    barrier = threading.Barrier(n)
    statuses: list[int] = []
    lock = threading.Lock()

    def go() -> None:
        c = app.test_client()
        barrier.wait()
        r = c.post("/api/v1/admin/persons", json=body, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        if r.status_code != 201:
            problem(r, 409, "PERSON_EXISTS")
        with lock:
            statuses.append(r.status_code)

    threads = [threading.Thread(target=go) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(statuses) == [201] + [409] * (n - 1)
    assert rows()["persons"] == 1


def test_get_unknown_person(yb):
    problem(yb.admin("GET", "/persons/psn_nope"), 404, "PERSON_NOT_FOUND")


def test_set_person_status(yb):
    p = yb.person()
    resp = yb.admin("PATCH", f"/persons/{p.psn_no}", {"status": "suspended"})
    assert resp.status_code == 200 and resp.get_json()["status"] == "suspended"
    resp = yb.admin("PATCH", f"/persons/{p.psn_no}", {"status": "active"})
    assert resp.status_code == 200 and resp.get_json()["status"] == "active"


@pytest.mark.parametrize(
    "body", [{}, {"status": "gone"}, {"status": 1}, {"status": "active", "name": "x"}, {"status": None}]
)
def test_set_person_status_bad_input(yb, body):
    p = yb.person(activate=False)
    err = problem(yb.admin("PATCH", f"/persons/{p.psn_no}", body), 422, "VALIDATION_FAILED")
    assert err["errors"]
    assert yb.admin("GET", f"/persons/{p.psn_no}").get_json()["status"] == "active"


def test_set_status_of_unknown_person(yb):
    problem(yb.admin("PATCH", "/persons/psn_nope", {"status": "suspended"}), 404, "PERSON_NOT_FOUND")


def test_lookup_person_by_id_number(yb, rows):
    p = yb.person(activate=False)
    yb.person(activate=False)
    before = rows()
    r = yb.admin("POST", "/persons/lookups", {"id_number": p.id_number.lower()})  # x or X alike
    assert r.status_code == 200, r.get_json()
    got = r.get_json()
    assert got["psn_no"] == p.psn_no and got["id_number_masked"] != p.id_number
    assert p.id_number not in r.get_data(as_text=True) and p.name not in r.get_data(as_text=True)
    problem(yb.admin("POST", "/persons/lookups", {"id_number": make_id_number()}), 404, "PERSON_NOT_FOUND")
    assert rows() == before  # a lookup writes nothing


@pytest.mark.parametrize(
    "body",
    [{}, {"id_number": "123"}, {"id_number": 110105199003071239}, {"id_number": "x", "name": "y"}],
)
def test_lookup_person_bad_input(yb, body):
    err = problem(yb.admin("POST", "/persons/lookups", body), 422, "VALIDATION_FAILED")
    assert err["errors"]


def test_list_persons_filters_and_pages(yb):
    employees = [yb.person(activate=False, region="532900") for _ in range(3)]
    resident = yb.person(activate=False, insurance_type="resident", region="110101")
    suspended = yb.person(activate=False, status="suspended", region="532900")
    seen, cursor = [], None
    while True:
        q = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = yb.admin("GET", f"/persons?{q}").get_json()
        assert len(page["items"]) <= 2
        seen += [i["psn_no"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [x.psn_no for x in (*employees, resident, suspended)]  # registration order, no repeats
    by = lambda q: [i["psn_no"] for i in yb.admin("GET", f"/persons?{q}").get_json()["items"]]  # noqa: E731
    assert by("insurance_type=resident") == [resident.psn_no]
    assert by("status=suspended") == [suspended.psn_no]
    assert by("insured_region=532900&status=active") == [e.psn_no for e in employees]
    item = yb.admin("GET", "/persons?limit=1").get_json()["items"][0]
    assert set(item) >= {"psn_no", "name_masked", "id_number_masked", "status"}
    assert "id_number" not in item and "name" not in item


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=201",
        "limit=x",
        "cursor=0",
        "cursor=-3",
        "status=gone",
        "insurance_type=x",
        "insured_region=999999",
    ],
)
def test_list_persons_bad_query(yb, query):
    err = problem(yb.admin("GET", f"/persons?{query}"), 422, "VALIDATION_FAILED")
    assert err["errors"]


# ---------------------------------------------------------------- cross-region filings


def test_cross_region_filing(yb, rows):
    p = yb.person(region="532900", activate=False)
    resp = yb.admin(
        "POST",
        f"/persons/{p.psn_no}/cross-region-filings",
        {"region": "110105", "valid_from": "2026-01-01", "valid_until": "2026-12-31"},
    )
    assert resp.status_code == 201, resp.get_json()
    data = resp.get_json()
    assert (
        data["region"] == "110105"
        and data["valid_from"] == "2026-01-01"
        and data["valid_until"] == "2026-12-31"
    )
    assert data["filing_no"].startswith("crf_")
    resp = yb.admin("POST", f"/persons/{p.psn_no}/cross-region-filings", {"region": "110000"})
    assert resp.status_code == 201
    assert resp.get_json()["valid_until"] is None and resp.get_json()["valid_from"]
    assert rows()["cross_region_filings"] == 2


BAD_FILINGS = [
    ("region", {}),
    ("region", {"region": "999999"}),
    ("region", {"region": 110105}),
    ("region", {"region": "532900"}),  # the insured region itself
    ("valid_from", {"region": "110105", "valid_from": "2026-02-30"}),
    ("valid_from", {"region": "110105", "valid_from": 20260101}),
    ("valid_until", {"region": "110105", "valid_until": "tomorrow"}),
    ("valid_until", {"region": "110105", "valid_from": "2026-05-01", "valid_until": "2026-04-30"}),
    ("note", {"region": "110105", "note": "x"}),
]


@pytest.mark.parametrize("field,body", BAD_FILINGS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_FILINGS)])
def test_cross_region_filing_bad_input(yb, rows, field, body):
    p = yb.person(region="532900", activate=False)
    before = rows()
    err = problem(
        yb.admin("POST", f"/persons/{p.psn_no}/cross-region-filings", body), 422, "VALIDATION_FAILED"
    )
    assert field in err["errors"], err
    assert rows() == before


def test_cross_region_filing_unknown_person(yb, rows):
    before = rows()
    problem(
        yb.admin("POST", "/persons/psn_nope/cross-region-filings", {"region": "110105"}),
        404,
        "PERSON_NOT_FOUND",
    )
    assert rows() == before


def test_region_covered_by_filings(app, yb):
    from yibao.db import db
    from yibao.registry import services

    p = yb.person(region="532900", activate=False)
    yb.admin("POST", f"/persons/{p.psn_no}/cross-region-filings", {"region": "110000"})
    yb.admin(
        "POST",
        f"/persons/{p.psn_no}/cross-region-filings",
        {"region": "310101", "valid_from": "2020-01-01", "valid_until": "2020-12-31"},
    )
    with app.app_context(), db.uow(readonly=True) as uow:
        person = services.require_person(uow, p.psn_no)
        assert services.region_covered(uow, person, "532901")  # a county of the insured prefecture
        assert services.region_covered(uow, person, "110105")  # the filing for all of Beijing
        assert not services.region_covered(uow, person, "310101")  # that filing expired
        assert not services.region_covered(uow, person, "530100")


# ---------------------------------------------------------------- institutions


def test_create_and_show_institution(yb, rows):
    resp = yb.admin("POST", "/institutions", inst_body(services=["02121", "02121", "03131"]))
    assert resp.status_code == 201, resp.get_json()
    creds = resp.get_json()
    assert set(creds) == {"org_id", "key_id", "secret"} and len(creds["secret"]) >= 32
    shown = yb.admin("GET", f"/institutions/{creds['org_id']}")
    assert shown.status_code == 200
    data = shown.get_json()
    assert data["services"] == ["02121", "03131"] and data["status"] == "active"
    assert creds["secret"] not in shown.get_data(as_text=True)
    assert rows()["institutions"] == 1


def test_institution_secret_not_stored_in_clear(app, yb):
    from sqlalchemy import text

    inst = yb.institution()
    with app.extensions["yibao.db"]["engine"].connect() as conn:
        row = conn.execute(text("SELECT * FROM institutions")).mappings().one()
    assert all(inst.secret not in str(v) for v in row.values())


def test_online_pharmacy(yb):
    resp = yb.admin("POST", "/institutions", inst_body(kind="online_pharmacy", services=["online_otc"]))
    assert resp.status_code == 201


BAD_INSTITUTIONS = [
    ("name", {"name": ...}),
    ("name", {"name": ""}),
    ("name", {"name": "   "}),
    ("name", {"name": 5}),
    ("name", {"name": "x" * 129}),
    ("kind", {"kind": "clinic"}),
    ("kind", {"kind": ...}),
    ("region", {"region": "000000"}),
    ("region", {"region": ...}),
    ("services", {"services": ...}),
    ("services", {"services": []}),
    ("services", {"services": "02121"}),
    ("services", {"services": ["99999"]}),
    ("services", {"services": [2121]}),
    ("services", {"services": ["02121"] * 17}),
    ("services", {"services": ["online_otc"]}),  # a counter pharmacy cannot sell online
    ("webhook_url", {"webhook_url": "ftp://example.com/x"}),
    ("webhook_url", {"webhook_url": "not a url"}),
    ("secret", {"secret": "mine"}),
]


@pytest.mark.parametrize(
    "field,over", BAD_INSTITUTIONS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_INSTITUTIONS)]
)
def test_create_institution_bad_input(yb, rows, field, over):
    before = rows()
    err = problem(yb.admin("POST", "/institutions", inst_body(**over)), 422, "VALIDATION_FAILED")
    assert field in err["errors"], err
    assert rows() == before


def test_get_unknown_institution(yb):
    problem(yb.admin("GET", "/institutions/org_nope"), 404, "INSTITUTION_NOT_FOUND")


def test_disable_and_reenable_institution(yb):
    inst = yb.institution(kind="pharmacy")
    assert yb.as_institution(inst, "GET", "/institutions/me").status_code == 200
    r = yb.admin("PATCH", f"/institutions/{inst.org_id}", {"status": "disabled"})
    assert r.status_code == 200 and r.get_json()["status"] == "disabled"
    # effective on the very next signed request: institutions are read afresh, never cached
    problem(yb.as_institution(inst, "GET", "/institutions/me"), 403, "INSTITUTION_DISABLED")
    r = yb.admin("PATCH", f"/institutions/{inst.org_id}", {"status": "active"})
    assert r.status_code == 200 and r.get_json()["status"] == "active"
    assert yb.as_institution(inst, "GET", "/institutions/me").status_code == 200


def test_change_designated_services(yb):
    inst = yb.institution(kind="pharmacy", services=["02121", "03131"])
    r = yb.admin("PATCH", f"/institutions/{inst.org_id}", {"services": ["03131", "03131"]})
    assert r.status_code == 200 and r.get_json()["services"] == ["03131"]
    me = yb.as_institution(inst, "GET", "/institutions/me").get_json()
    assert me["services"] == ["03131"] and me["status"] == "active"


@pytest.mark.parametrize(
    "body,field",
    [
        ({}, "_schema"),
        ({"status": "closed"}, "status"),
        ({"status": None}, "status"),
        ({"services": []}, "services"),
        ({"services": ["99999"]}, "services"),
        ({"services": "02121"}, "services"),
        ({"services": ["online_otc"]}, "services"),  # a pharmacy, not an online pharmacy
        ({"status": "disabled", "name": "x"}, "name"),
    ],
)
def test_update_institution_bad_input(yb, body, field):
    inst = yb.institution(kind="pharmacy", services=["02121", "03131"])
    err = problem(yb.admin("PATCH", f"/institutions/{inst.org_id}", body), 422, "VALIDATION_FAILED")
    assert field in err["errors"], err
    shown = yb.admin("GET", f"/institutions/{inst.org_id}").get_json()
    assert shown["status"] == "active" and shown["services"] == ["02121", "03131"]  # nothing written


def test_list_institutions_filters_and_pages(yb):
    a = yb.institution(kind="pharmacy", region="532900")
    b = yb.institution(kind="hospital", region="532900")
    c = yb.institution(kind="online_pharmacy", region="110100")
    yb.admin("PATCH", f"/institutions/{b.org_id}", {"status": "disabled"})
    page1 = yb.admin("GET", "/institutions?limit=2").get_json()
    page2 = yb.admin("GET", f"/institutions?limit=2&cursor={page1['next_cursor']}").get_json()
    assert [i["org_id"] for i in page1["items"] + page2["items"]] == [a.org_id, b.org_id, c.org_id]
    assert page2["next_cursor"] is None
    by = lambda q: [i["org_id"] for i in yb.admin("GET", f"/institutions?{q}").get_json()["items"]]  # noqa: E731
    assert by("kind=hospital") == [b.org_id]
    assert by("status=active&region=532900") == [a.org_id]
    assert by("region=110100") == [c.org_id]
    text = yb.admin("GET", "/institutions").get_data(as_text=True)
    assert a.secret not in text and "secret" not in text


@pytest.mark.parametrize("query", ["limit=0", "cursor=x", "kind=clinic", "status=closed", "region=12"])
def test_list_institutions_bad_query(yb, query):
    problem(yb.admin("GET", f"/institutions?{query}"), 422, "VALIDATION_FAILED")


def test_update_unknown_institution(yb):
    problem(yb.admin("PATCH", "/institutions/org_nope", {"status": "disabled"}), 404, "INSTITUTION_NOT_FOUND")


# ---------------------------------------------------------------- transport-level bad input, every endpoint


def _endpoints(yb):
    p = yb.person(activate=False)
    inst = yb.institution()
    return [
        ("POST", "/persons"),
        ("PATCH", f"/persons/{p.psn_no}"),
        ("POST", f"/persons/{p.psn_no}/cross-region-filings"),
        ("POST", "/institutions"),
        ("POST", f"/institutions/{inst.org_id}/secret-rotations"),
    ]


def test_non_json_malformed_and_oversize_bodies(app, client, yb, rows):
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for method, path in _endpoints(yb):
        url = f"/api/v1/admin{path}"
        before = rows()
        problem(
            client.open(url, method=method, data="name=x", headers={**auth, "Content-Type": "text/plain"}),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        )
        problem(
            client.open(url, method=method, data={"name": "x"}, headers=auth), 415, "UNSUPPORTED_MEDIA_TYPE"
        )
        problem(
            client.open(
                url, method=method, data=b'{"name": ', headers={**auth, "Content-Type": "application/json"}
            ),
            400,
            "MALFORMED_JSON",
        )
        problem(
            client.open(
                url, method=method, data=b"\xff\xfe{}", headers={**auth, "Content-Type": "application/json"}
            ),
            400,
            "MALFORMED_JSON",
        )
        big = json.dumps({"name": "x" * (app.config["MAX_CONTENT_LENGTH"] + 1)})
        problem(
            client.open(url, method=method, data=big, headers={**auth, "Content-Type": "application/json"}),
            413,
            "PAYLOAD_TOO_LARGE",
        )
        assert rows() == before, (method, path)


def test_oversize_chunked_body(app, client, rows):
    """A body without Content-Length is still cut at the limit."""
    import io

    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
    big = io.BytesIO(json.dumps({"name": "x" * (app.config["MAX_CONTENT_LENGTH"] + 10)}).encode())
    resp = client.post(
        "/api/v1/admin/persons",
        input_stream=big,
        headers={**auth, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},  # as gunicorn sets it for chunked bodies
    )
    problem(resp, 413, "PAYLOAD_TOO_LARGE")
    assert rows()["persons"] == 0


ALL_ADMIN = [
    ("POST", "/persons"),
    ("GET", "/persons"),
    ("POST", "/persons/lookups"),
    ("GET", "/persons/psn_x"),
    ("PATCH", "/persons/psn_x"),
    ("POST", "/persons/psn_x/cross-region-filings"),
    ("POST", "/institutions"),
    ("GET", "/institutions"),
    ("GET", "/institutions/org_x"),
    ("PATCH", "/institutions/org_x"),
    ("POST", "/institutions/org_x/secret-rotations"),
]


@pytest.mark.parametrize("method,path", ALL_ADMIN)
@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer wrong-token", f"Basic {ADMIN_TOKEN}", f"Bearer {ADMIN_TOKEN}x", ADMIN_TOKEN],
)
def test_admin_auth_required(client, rows, method, path, header):
    headers = {"Authorization": header} if header else {}
    before = rows()
    body = (
        person_body() if path == "/persons" else inst_body() if path == "/institutions" else {"status": "x"}
    )
    problem(
        client.open(f"/api/v1/admin{path}", method=method, json=body, headers=headers),
        401,
        "ADMIN_AUTH_FAILED",
    )
    assert rows() == before


@pytest.mark.parametrize("unset", [None, ""])
def test_admin_fails_closed_without_admin_token(make_app, rows, unset):
    c = make_app(ADMIN_TOKEN=unset).test_client()
    for header in (None, "Bearer ", "Bearer None", f"Bearer {ADMIN_TOKEN}"):
        headers = {"Authorization": header} if header else {}
        problem(
            c.post("/api/v1/admin/persons", json=person_body(), headers=headers), 401, "ADMIN_AUTH_FAILED"
        )
    assert rows()["persons"] == 0


def test_auth_checked_before_body(client):
    """An unauthenticated caller learns nothing about validation."""
    resp = client.post("/api/v1/admin/persons", json={"bogus": 1})
    problem(resp, 401, "ADMIN_AUTH_FAILED")
