"""One YO1 code fired by 200 concurrent scans at a multi-worker gunicorn: exactly one success."""

from __future__ import annotations

import time

import pytest

from tests.servers import gunicorn
from voucher.models import EcToken, VoucherUse
from yibao_client import offline

from .offline_support import new_credential
from .support import count_rows
from .test_multiprocess import race, server_env

SCANS = 200


@pytest.mark.slow
def test_one_offline_code_200_concurrent_scans(app, yb, database_url, redis_url):
    p, inst = yb.person(balance=100), yb.institution()
    cred = new_credential(yb, p)
    with gunicorn(server_env(database_url, redis_url), workers=4) as url:
        # the next step's code: valid for 60-90 s from now, whatever the machine's load
        code = offline.Credential(cred["credential_id"], cred["secret"]).code(at=time.time() + 30)
        results = race(url, vars(inst), code, SCANS)
    assert results == {(200, None): 1, (409, "VOUCHER_ALREADY_USED"): SCANS - 1}, results
    assert count_rows(app, EcToken) == 1
    assert count_rows(app, VoucherUse, sub=cred["credential_id"]) == 1
