"""The ec_token handed to institutions after a verification (temporary re-export during the split)."""

from .services import EcTokenGrant, issue_ec_token, resolve_ec_token

__all__ = ["EcTokenGrant", "issue_ec_token", "resolve_ec_token"]
