"""Field types every domain's schemas share: booleans as the contract has them.

marshmallow's Boolean takes 1, "1", "yes", "on" and "True" for true; `truthy={True}` still lets 1 and 0
through, since 1 == True in a set. The API's booleans are JSON true and false in bodies and the text
"true" or "false" in query strings (OpenAPI's serialization of a boolean parameter), nothing else.
"""

from __future__ import annotations

from typing import Any

from marshmallow import fields

from .errors import register_field_messages

QUERY_BOOLEAN_MESSAGE = 'Must be "true" or "false".'
register_field_messages({QUERY_BOOLEAN_MESSAGE: "必须为 “true” 或 “false”。"})


class StrictBoolean(fields.Boolean):
    """A body boolean: JSON true or false only ("Not a valid boolean." otherwise)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class QueryBoolean(fields.Boolean):
    """A query-string boolean: exactly the text "true" or "false"."""

    default_error_messages = {"invalid": QUERY_BOOLEAN_MESSAGE}

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> bool:
        if value == "true" or value == "false":
            return value == "true"
        raise self.make_error("invalid", input=value)
