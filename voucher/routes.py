"""Voucher endpoints (issue #3)."""

from yibao.api import Blueprint

blp = Blueprint("vouchers", __name__, url_prefix="/api/v1", description="E-vouchers (医保码)")
