"""yibao_client: a standard-library-only Python SDK for the yibao API (contract v1).

    from yibao_client import InstitutionClient, UserClient, AdminClient, errors, offline, signing, webhooks

See docs/sdk.md for the clients, what is retried and why, the errors and the signing test vectors.
"""

from __future__ import annotations

from . import errors, offline, signing, webhooks
from ._base import Result, __version__
from .admin import AdminClient
from .errors import YibaoError
from .institution import InstitutionClient
from .user import Tokens, UserClient

__all__ = [
    "AdminClient",
    "InstitutionClient",
    "Result",
    "Tokens",
    "UserClient",
    "YibaoError",
    "__version__",
    "errors",
    "offline",
    "signing",
    "webhooks",
]
