"""The fast path for create bodies answers exactly as marshmallow does, or leaves it to it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError

from tests.factories import batch_body
from videobatch.schemas.batch import BatchCreateSchema
from videobatch.schemas.batch_fast_path import load_plainly_valid

MAX_ITEMS = 4

# Bodies are generated valid, then half of them get one thing wrong: a field's value just past
# its limit or of the wrong JSON type, an unknown field, a missing prompt, or too many items.
wrong_types = st.sampled_from([None, True, False, 5.0, 5.5, "5", [], {}])


def text_up_to(limit: int):
    return st.one_of(st.text(max_size=4), st.just("a" * limit))


valid_fields = {
    "duration_seconds": st.one_of(st.integers(1, 60), st.sampled_from([1, 60])),
    "aspect_ratio": st.sampled_from(["16:9", "9:16", "1:1", "4:3", "3:4", "21:9"]),
    "style": text_up_to(64),
    "negative_prompt": text_up_to(2000),
    "seed": st.one_of(st.integers(0, 2**31 - 1), st.sampled_from([0, 2**31 - 1])),
    "client_ref": text_up_to(128),
}
invalid_fields = {
    "prompt": st.one_of(st.sampled_from(["", "   ", "\u2003", "p" * 4001]), wrong_types),
    "duration_seconds": st.one_of(st.sampled_from([0, 61, 5.0, 60.0, 5.5]), wrong_types),
    "aspect_ratio": st.one_of(st.sampled_from(["4:5", "", "16:10"]), wrong_types),
    "style": st.one_of(st.just("a" * 65), wrong_types),
    "negative_prompt": st.one_of(st.just("a" * 2001), wrong_types),
    "seed": st.one_of(st.sampled_from([-1, 2**31, 3.0]), wrong_types),
    "client_ref": st.one_of(st.just("a" * 129), wrong_types),
    "colour": st.just("red"),  # not a field
}
valid_items = st.fixed_dictionaries(
    {"prompt": st.one_of(st.text(min_size=1, max_size=6).filter(str.strip), st.just("p" * 4000))},
    optional=valid_fields,
)
valid_metadata = st.dictionaries(
    st.one_of(st.text(min_size=1, max_size=3), st.just("k" * 64)), text_up_to(500), max_size=16
)
valid_bodies = st.fixed_dictionaries(
    {"items": st.lists(valid_items, min_size=1, max_size=MAX_ITEMS)},
    optional={"metadata": valid_metadata},
)


def spoil(body: dict, draw) -> dict:
    """``body`` with one thing wrong."""
    how = draw(st.sampled_from(["item", "no prompt", "items", "metadata", "top", "type"]))
    items = [dict(item) for item in body["items"]]
    if how == "item":
        name = draw(st.sampled_from(sorted(invalid_fields)))
        items[draw(st.integers(0, len(items) - 1))][name] = draw(invalid_fields[name])
    elif how == "no prompt":
        del items[0]["prompt"]
    elif how == "items":
        items = draw(st.sampled_from([[], items * (MAX_ITEMS + 1), None, {}]))
    elif how == "metadata":
        metadata = draw(
            st.sampled_from([{"": "x"}, {"k" * 65: "x"}, {"k": "v" * 501}, {"k": 1}, [], None])
        )
        return {**body, "items": items, "metadata": metadata}
    elif how == "top":
        return {**body, "items": items, "extra": 1}
    else:
        return draw(wrong_types)
    return {**body, "items": items}


@st.composite
def bodies(draw) -> object:
    body = draw(valid_bodies)
    return spoil(body, draw) if draw(st.booleans()) else body


def marshmallow_load(body):
    try:
        return Schema.load(BatchCreateSchema(max_items=MAX_ITEMS), body)
    except ValidationError:
        return None


@settings(max_examples=400, deadline=None)
@given(bodies())
def test_fast_path_accepts_only_what_marshmallow_accepts_and_loads_it_the_same(body):
    fast = load_plainly_valid(body, MAX_ITEMS)
    if fast is not None:
        assert fast == marshmallow_load(body)


def test_ordinary_bodies_take_the_fast_path():
    full_item = {
        "prompt": "A cinematic video of a city at sunset",
        "duration_seconds": 10,
        "aspect_ratio": "9:16",
        "style": "cinematic",
        "negative_prompt": "blurry",
        "seed": 42,
        "client_ref": "row-17",
    }
    for body in (batch_body(MAX_ITEMS), {"items": [full_item], "metadata": {"campaign": "x"}}):
        assert load_plainly_valid(body, MAX_ITEMS) == marshmallow_load(body)
        assert load_plainly_valid(body, MAX_ITEMS) is not None


def test_bodies_off_the_fast_path_are_still_loaded_by_the_schema():
    body = {"items": [{"prompt": "x", "duration_seconds": 5.0}]}
    assert load_plainly_valid(body, MAX_ITEMS) is None
    loaded = BatchCreateSchema(max_items=MAX_ITEMS).load(body)
    assert loaded["items"][0]["duration_seconds"] == 5


def one_item(**fields) -> dict:
    return {"items": [{"prompt": "x", **fields}]}


@pytest.mark.parametrize(
    "body",
    [
        one_item(prompt="p" * 4001),
        one_item(prompt=""),
        one_item(prompt="   "),
        one_item(prompt="\u2003"),
        one_item(prompt=None),
        {"items": [{"style": "noir"}]},
        one_item(duration_seconds=0),
        one_item(duration_seconds=61),
        one_item(duration_seconds=True),
        one_item(duration_seconds="5"),
        one_item(aspect_ratio="4:5"),
        one_item(style="a" * 65),
        one_item(negative_prompt="a" * 2001),
        one_item(seed=-1),
        one_item(seed=2**31),
        one_item(seed=False),
        one_item(client_ref="a" * 129),
        one_item(client_ref=None),
        one_item(colour="red"),
        {"items": []},
        {"items": [{"prompt": "x"}] * (MAX_ITEMS + 1)},
        {**one_item(), "metadata": {"": "x"}},
        {**one_item(), "metadata": {"k" * 65: "x"}},
        {**one_item(), "metadata": {"k": "v" * 501}},
        {**one_item(), "metadata": {str(n): "v" for n in range(17)}},
        {**one_item(), "metadata": {"k": 1}},
        {**one_item(), "metadata": None},
        {**one_item(), "extra": 1},
    ],
)
def test_every_limit_leaves_the_body_to_marshmallow_which_rejects_it(body):
    assert load_plainly_valid(body, MAX_ITEMS) is None
    assert marshmallow_load(body) is None


@pytest.mark.parametrize(
    "body",
    [
        one_item(prompt="p" * 4000),
        one_item(duration_seconds=1, seed=0),
        one_item(duration_seconds=60, seed=2**31 - 1),
        one_item(style="a" * 64, negative_prompt="a" * 2000, client_ref="a" * 128),
        {"items": [{"prompt": "x"}] * MAX_ITEMS},
        {**one_item(), "metadata": {"k" * 64: "v" * 500}},
        {**one_item(), "metadata": {str(n): "" for n in range(16)}},
    ],
)
def test_values_at_the_limits_take_the_fast_path(body):
    assert load_plainly_valid(body, MAX_ITEMS) is not None
    assert load_plainly_valid(body, MAX_ITEMS) == marshmallow_load(body)
