"""Personal data: encrypted at rest, masked when shown; ID-number validation and masking properties."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from tests.support import make_name
from yibao import crypto
from yibao.registry.validators import id_check_digit, is_valid_id_number, province_codes


def test_database_never_holds_plaintext(app, yb):
    p = yb.person(name="欧阳小明", balance=100)
    with app.extensions["yibao.db"]["engine"].connect() as conn:
        row = conn.execute(text("SELECT * FROM persons")).mappings().one()
        sessions = conn.execute(text("SELECT * FROM auth_sessions")).mappings().all()
        tokens = conn.execute(text("SELECT * FROM refresh_tokens")).mappings().all()
    flat = " ".join(str(v) for v in row.values())
    assert p.id_number not in flat and p.id_number[:17] not in flat and p.id_number[6:14] not in flat
    assert p.name not in flat and "小明" not in flat
    assert row["name_masked"] == "欧**明"
    assert row["id_number_masked"] == p.id_number[:3] + "*" * 11 + p.id_number[-4:]
    # Refresh tokens are kept only as hashes.
    assert all(p.refresh_token not in str(dict(t)) for t in tokens)
    assert sessions


def test_encryption_is_bound_to_the_row(app, yb):
    """A ciphertext copied onto another row does not decrypt (the psn_no is associated data)."""
    from cryptography.exceptions import InvalidTag

    from yibao.registry import services

    a = yb.person(activate=False)
    b = yb.person(activate=False)
    with app.app_context():
        from yibao.db import db

        with db.uow(readonly=True) as uow:
            pa = services.require_person(uow, a.psn_no)
            pb = services.require_person(uow, b.psn_no)
            assert services.reveal_id_number(pa) == a.id_number
            pb.id_number_enc = pa.id_number_enc
            with pytest.raises(InvalidTag):
                services.reveal_id_number(pb)


def test_admin_view_is_masked(yb):
    p = yb.person(activate=False)
    resp = yb.admin("GET", f"/persons/{p.psn_no}")
    body = resp.get_data(as_text=True)
    assert p.id_number not in body and p.name not in body


# ------------------------------------------------------------------ properties


@given(st.text(min_size=0, max_size=40))
def test_mask_id_number_shape(value):
    masked = crypto.mask_id_number(value)
    assert len(masked) == len(value)
    if len(value) <= 7:
        assert masked == "*" * len(value)
    else:
        assert masked[:3] == value[:3] and masked[-4:] == value[-4:]
        assert set(masked[3:-4]) == {"*"}


@given(st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=1, max_size=12))
def test_mask_name_shape(name):
    masked = crypto.mask_name(name)
    assert len(masked) == len(name)
    assert "*" in masked and masked != name
    if len(name) >= 2:
        assert masked[0] == name[0]
    if len(name) >= 3:
        assert masked[-1] == name[-1] and set(masked[1:-1]) == {"*"}
    # Never more than two characters of the name show.
    assert sum(1 for a, b in zip(masked, name, strict=True) if a == b) <= 2


@st.composite
def valid_ids(draw) -> str:
    province = draw(st.sampled_from(sorted(province_codes())))
    rest = draw(st.text(alphabet="0123456789", min_size=4, max_size=4))
    born = draw(st.dates(min_value=date(1880, 1, 1), max_value=date.today()))
    seq = draw(st.integers(min_value=0, max_value=999))
    first17 = f"{province}{rest}{born:%Y%m%d}{seq:03d}"
    return first17 + id_check_digit(first17)


@given(valid_ids())
def test_every_valid_id_passes(id_number):
    assert is_valid_id_number(id_number)
    assert is_valid_id_number(id_number.lower().upper())


@settings(max_examples=300)
@given(valid_ids(), st.integers(min_value=0, max_value=17), st.integers(min_value=1, max_value=10))
def test_any_single_character_change_fails(id_number, pos, delta):
    chars = "0123456789X" if pos == 17 else "0123456789"
    old = id_number[pos]
    new = chars[(chars.index(old) + delta) % len(chars)]
    if new == old:
        return
    changed = id_number[:pos] + new + id_number[pos + 1 :]
    assert not is_valid_id_number(changed)


@given(valid_ids(), st.integers(min_value=0, max_value=16))
def test_adjacent_transposition_of_different_digits_fails(id_number, pos):
    a, b = id_number[pos], id_number[pos + 1]
    if a == b or b == "X":
        return
    swapped = id_number[:pos] + b + a + id_number[pos + 2 :]
    assert not is_valid_id_number(swapped)


@given(st.text(max_size=30))
def test_validator_never_raises(value):
    assert is_valid_id_number(value) in (True, False)


def test_names_are_validated(yb):
    for bad in ("<b>张三</b>", "张三;DROP", "1张三", " "):
        resp = yb.admin(
            "POST",
            "/persons",
            {
                "name": bad,
                "id_number": "110105194912310021",
                "insurance_type": "resident",
                "insured_region": "110105",
            },
        )
        assert resp.status_code == 422
    assert make_name()


def test_non_ascii_digits_refused(yb, rows):
    """Full-width or other Unicode digits would give the same person a second blind index."""
    from tests.support import make_id_number

    good = make_id_number()
    assert (
        yb.admin(
            "POST",
            "/persons",
            {"name": "张三", "id_number": good, "insurance_type": "resident", "insured_region": "532900"},
        ).status_code
        == 201
    )
    for pos in (5, 10, 16):
        twin = good[:pos] + chr(ord(good[pos]) + 0xFEE0) + good[pos + 1 :]
        assert not is_valid_id_number(twin)
        resp = yb.admin(
            "POST",
            "/persons",
            {"name": "张三", "id_number": twin, "insurance_type": "resident", "insured_region": "532900"},
        )
        assert resp.status_code == 422 and "id_number" in resp.get_json()["errors"]
    assert rows()["persons"] == 1


@given(valid_ids(), st.integers(min_value=0, max_value=16))
def test_unicode_digit_twins_fail(id_number, pos):
    twin = id_number[:pos] + chr(ord(id_number[pos]) + 0xFEE0) + id_number[pos + 1 :]
    assert not is_valid_id_number(twin)
