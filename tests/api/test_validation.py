"""The create body's validation rules (SPEC 4.3): every field's limits, on both tiers."""

from __future__ import annotations

import pytest

from tests.factories import ledger_state, make_account

URL = "/api/enterprise/video-batch"


@pytest.fixture
def account(app):
    return make_account(app, credits=100_000)


def create(client, account, body, request_id="v-1"):
    return client.post(
        URL, json=body, headers={"x-api-key": account.api_key, "x-request-id": request_id}
    )


def item(**fields):
    return {"prompt": "A cat", **fields}


VALID_ITEMS = [
    item(prompt="x"),
    item(prompt="p" * 4000),
    item(duration_seconds=1),
    item(duration_seconds=60),
    *[item(aspect_ratio=ratio) for ratio in ("16:9", "9:16", "1:1", "4:3", "3:4", "21:9")],
    item(style="s" * 64),
    item(negative_prompt="n" * 2000),
    item(seed=0),
    item(seed=2**31 - 1),
    item(client_ref="r" * 128),
    item(style="cinematic", negative_prompt="blurry", seed=42, client_ref="row-17"),
]

INVALID_ITEMS = [
    ({}, "prompt"),
    (item(prompt=""), "prompt"),
    (item(prompt="   \n\t"), "prompt"),
    (item(prompt="p" * 4001), "prompt"),
    (item(prompt=42), "prompt"),
    (item(prompt=None), "prompt"),
    (item(duration_seconds=0), "duration_seconds"),
    (item(duration_seconds=61), "duration_seconds"),
    (item(duration_seconds=5.5), "duration_seconds"),
    (item(duration_seconds="5"), "duration_seconds"),
    (item(duration_seconds=True), "duration_seconds"),
    (item(aspect_ratio="2:1"), "aspect_ratio"),
    (item(aspect_ratio=""), "aspect_ratio"),
    (item(style="s" * 65), "style"),
    (item(negative_prompt="n" * 2001), "negative_prompt"),
    (item(seed=-1), "seed"),
    (item(seed=2**31), "seed"),
    (item(seed="42"), "seed"),
    (item(client_ref="r" * 129), "client_ref"),
    (item(colour="red"), "colour"),
]


@pytest.mark.parametrize("valid_item", VALID_ITEMS)
def test_valid_items_are_accepted(app, client, account, valid_item):
    response = create(client, account, {"items": [valid_item]})
    assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize(("bad_item", "field"), INVALID_ITEMS)
def test_invalid_items_are_400_with_the_field_named(app, client, account, bad_item, field):
    response = create(client, account, {"items": [bad_item]})
    assert response.status_code == 400
    body = response.get_json()
    assert response.content_type == "application/problem+json"
    assert body["code"] == "validation_error"
    assert field in body["errors"]["items"]["0"]
    assert ledger_state(app, account.account_id)["batches"] == 0


def test_item_count_limits(app, client, account):
    assert create(client, account, {"items": []}, "none").status_code == 400
    too_many = {"items": [item()] * 1001}
    response = create(client, account, too_many, "many")
    assert response.status_code == 400
    assert "items" in response.get_json()["errors"]
    assert create(client, account, {"items": [item()] * 1000}, "max").status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        [],
        "items",
        42,
        {"items": "x"},
        {"items": [1]},
        {"items": [["prompt"]]},
        {"items": [item()], "metadata": []},
        {"items": [item()], "metadata": {"k": 1}},
        {"items": [item()], "metadata": {"k": "v" * 501}},
        {"items": [item()], "metadata": {f"k{i}": "v" for i in range(17)}},
        {"items": [item()], "priority": "high"},
    ],
)
def test_malformed_bodies_are_400(app, client, account, body):
    response = create(client, account, body)
    assert response.status_code == 400
    assert response.get_json()["code"] == "validation_error"


def test_json_null_body_is_a_validation_error(app, client, account):
    response = client.post(
        URL,
        data="null",
        content_type="application/json",
        headers={"x-api-key": account.api_key, "x-request-id": "n"},
    )
    assert response.status_code == 400
    assert response.get_json()["code"] == "validation_error"


def test_metadata_limits_accept_the_maximum(app, client, account):
    metadata = {f"k{i}": "v" * 500 for i in range(16)}
    assert create(client, account, {"items": [item()], "metadata": metadata}).status_code == 201


def test_unicode_prompts_round_trip(app, client, account):
    response = create(client, account, {"items": [item(prompt="城市的日落 电影感 🎬")]})
    assert response.status_code == 201
