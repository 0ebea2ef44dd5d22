"""Voucher fixtures: the driver that issues, scans and forges codes (helpers are in support.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import Yb

from .support import VoucherDriver


@pytest.fixture
def vd(yb: Yb, app: Any) -> VoucherDriver:
    return VoucherDriver(yb, app)
