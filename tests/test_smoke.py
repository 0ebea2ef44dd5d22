def test_healthz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_create_person_and_activate(yb):
    p = yb.person(balance=100)
    assert p.access_token
