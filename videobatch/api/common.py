"""What every view needs from a request: its JSON body, parsed and validated."""

from __future__ import annotations

import json
from typing import Any

from flask import request
from marshmallow import EXCLUDE, Schema, ValidationError

from videobatch.errors import InvalidJSON, ValidationFailed


def load_json(schema: Schema, *, allow_empty: bool = False) -> dict[str, Any]:
    """The request body, parsed as JSON and loaded through ``schema`` (400 on any problem)."""
    raw = request.get_data(cache=False)
    if not raw.strip() and allow_empty:
        body: Any = {}
    else:
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise InvalidJSON("The request body is not valid JSON") from None
    return schema.load(body)


def load_query(schema: Schema) -> dict[str, Any]:
    """The query string loaded through ``schema``; unknown parameters are ignored."""
    try:
        return schema.load(request.args.to_dict(), unknown=EXCLUDE)
    except ValidationError as error:
        raise ValidationFailed(
            "The query string failed validation", errors=error.normalized_messages()
        ) from None
