"""The interface other domains call: may this person act for that member, whose accounts share costs.

(Temporary re-export while family_accounts/services.py is split; the split moves the code here.)
"""

from .services import acting_permission, mutual_aid_holders

__all__ = ["acting_permission", "mutual_aid_holders"]
