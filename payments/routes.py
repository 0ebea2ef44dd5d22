"""Payment endpoints (issue #4)."""

from yibao.api import Blueprint

blp = Blueprint("payments", __name__, url_prefix="/api/v1", description="Personal-account payments")
