"""Family account endpoints (issue #5)."""

from yibao.api import Blueprint

blp = Blueprint("family", __name__, url_prefix="/api/v1/family", description="Family accounts (亲情账户)")
