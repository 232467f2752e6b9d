"""What every view needs from a request: its JSON body, parsed and validated."""

from __future__ import annotations

import json
from typing import Any

from flask import request
from marshmallow import Schema

from videobatch.errors import InvalidJSON


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
