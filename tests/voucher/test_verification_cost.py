"""What a verification sends to the database (issues 12 and 16): the person (with the revocation
watermark and supervision's rules version) in one read, then the writes. The enabled rules come from the
worker's cache while that version stands: no statement reads supervision_rules."""

from __future__ import annotations

import time

from tests.supervision.support import statement_shapes, velocity_rule

from .offline_support import independent_code, new_credential

WITHOUT_RULES = [
    "SELECT persons",  # the person by the code's subject, the watermark, the rules' version
    "INSERT voucher_uses",  # single use, durable
    "INSERT supervision_scans",  # the accepted scan, counted
    "INSERT ec_tokens",
    "INSERT voucher_usage",  # the audit row
]
# An identity rule: the person's supervision row is locked and their scans in the window read.
WITH_A_RULE = [
    *WITHOUT_RULES[:2],
    "INSERT supervision_persons",
    "SELECT supervision_scans",
    *WITHOUT_RULES[2:],
]


def test_a_signed_scan_sends_one_read_and_the_writes(app, yb, vd):
    p = yb.person(region="530000")
    dali = yb.institution(region="532901")
    assert vd.scan(dali, vd.issue(p)["qr_content"]).status_code == 200  # the worker's cache is filled
    code = vd.issue(p)["qr_content"]
    assert statement_shapes(app, lambda: vd.scan(dali, code)) == WITHOUT_RULES
    velocity_rule(yb, action="warn")
    assert vd.scan(dali, vd.issue(p)["qr_content"]).status_code == 200  # the first after it reloads
    code = vd.issue(p)["qr_content"]
    assert statement_shapes(app, lambda: vd.scan(dali, code)) == WITH_A_RULE


def test_an_offline_scan_reads_the_version_with_the_credential(app, yb, vd):
    p = yb.person(region="530000")
    dali = yb.institution(region="532901")
    velocity_rule(yb, action="warn")
    assert vd.scan(dali, vd.issue(p)["qr_content"]).status_code == 200
    cred = new_credential(yb, p)
    code = independent_code(cred["credential_id"], cred["secret"], time.time(), 0)
    assert (
        statement_shapes(app, lambda: vd.scan(dali, code))
        == [
            "SELECT voucher_offline_credentials",  # the credential, its person, the rules' version
            *WITH_A_RULE[1:],
        ]
    )
