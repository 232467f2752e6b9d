"""Field types and shapes shared by every schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields


class StrictInteger(fields.Integer):
    """An integer that is really an integer: no strings, fractions or booleans.

    ``5.0`` is accepted as 5: JSON (and JSON Schema's ``integer``) does not tell the two apart.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return super()._deserialize(value, attr, data, **kwargs)


class Timestamp(fields.Field):
    """A UTC instant as ISO 8601 with a ``Z``, e.g. ``2026-12-04T10:00:00.000Z``."""

    def _serialize(self, value: datetime | None, attr: str | None, obj: Any, **kwargs: Any):
        if value is None:
            return None
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class NonBlankString(fields.String):
    """A string with at least one non-whitespace character."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        result = super()._deserialize(value, attr, data, **kwargs)
        if not result.strip():
            raise ValidationError("Must not be blank.")
        return result


class ProblemSchema(Schema):
    """The error body (RFC 9457 problem details with videobatch's extension members)."""

    ok = fields.Boolean(required=True, metadata={"example": False})
    type = fields.String(required=True, metadata={"example": "about:blank"})
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    code = fields.String(required=True, metadata={"description": "Stable machine-readable code"})
    detail = fields.String(required=True)
    request_id = fields.String()
    errors = fields.Dict(metadata={"description": "Per-field messages (validation_error)"})
    required_credits = fields.Integer()
    available_credits = fields.Integer()


def canonical_json(value: Any) -> str:
    """The one JSON spelling of a value: sorted keys, no whitespace, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
