"""Loading a create body that is plainly valid, without marshmallow's per-field work.

Marshmallow spends about 30 µs on each item of a batch, a third of a 100-item create's CPU
(docs/PERFORMANCE.md). Nearly every body a client sends is valid, with values of exactly the
expected JSON types, so ``load_plainly_valid`` checks those directly and returns exactly what
``BatchCreateSchema.load`` returns for them. Anything else (a wrong type, a value out of range,
an unknown field, a float standing for an integer) gets ``None``, and marshmallow decides and
writes the per-field messages. The fast path may only ever be stricter than the schema, never
looser: tests/unit/test_batch_fast_path.py compares the two on generated bodies.
"""

from __future__ import annotations

from typing import Any

from videobatch.schemas.batch import ASPECT_RATIOS, MAX_METADATA_KEYS, MAX_METADATA_VALUE

# The limits of BatchItemSchema and BatchCreateSchema's fields.
MAX_PROMPT = 4000
DURATION_DEFAULT, DURATION_RANGE = 5, (1, 60)
ASPECT_RATIO_DEFAULT = "16:9"
SEED_RANGE = (0, 2**31 - 1)
OPTIONAL_STRINGS = {"style": 64, "negative_prompt": 2000, "client_ref": 128}
ITEM_FIELDS = frozenset(("prompt", "duration_seconds", "aspect_ratio", "seed", *OPTIONAL_STRINGS))
MAX_METADATA_KEY = 64


def load_plainly_valid(body: Any, max_items: int) -> dict[str, Any] | None:
    """The loaded body when it is plainly valid; ``None`` when marshmallow must judge it."""
    if type(body) is not dict or not body.keys() <= {"items", "metadata"}:
        return None
    items = body.get("items")
    metadata = body.get("metadata", {})
    if type(items) is not list or not 1 <= len(items) <= max_items:
        return None
    if not _plain_metadata(metadata):
        return None
    loaded = []
    for item in items:
        plain = _plain_item(item)
        if plain is None:
            return None
        loaded.append(plain)
    return {"items": loaded, "metadata": dict(metadata)}


def _plain_item(item: Any) -> dict[str, Any] | None:
    if type(item) is not dict or not item.keys() <= ITEM_FIELDS:
        return None
    prompt = item.get("prompt")
    if type(prompt) is not str or not 1 <= len(prompt) <= MAX_PROMPT or not prompt.strip():
        return None
    duration = item.get("duration_seconds", DURATION_DEFAULT)
    aspect_ratio = item.get("aspect_ratio", ASPECT_RATIO_DEFAULT)
    if not _plain_int(duration, DURATION_RANGE):
        return None
    if type(aspect_ratio) is not str or aspect_ratio not in ASPECT_RATIOS:
        return None
    if "seed" in item and not _plain_int(item["seed"], SEED_RANGE):
        return None
    for name, limit in OPTIONAL_STRINGS.items():
        if name in item and (type(item[name]) is not str or len(item[name]) > limit):
            return None
    return {**item, "duration_seconds": duration, "aspect_ratio": aspect_ratio}


def _plain_int(value: Any, bounds: tuple[int, int]) -> bool:
    # type() and not isinstance(): True is an int to Python, and never a valid integer here.
    return type(value) is int and bounds[0] <= value <= bounds[1]


def _plain_metadata(metadata: Any) -> bool:
    return (
        type(metadata) is dict
        and len(metadata) <= MAX_METADATA_KEYS
        and all(
            type(key) is str
            and 1 <= len(key) <= MAX_METADATA_KEY
            and type(value) is str
            and len(value) <= MAX_METADATA_VALUE
            for key, value in metadata.items()
        )
    )
