"""The cheap paths of the create endpoint keep its answers: replays of the same bytes, the
cache written as the lock is released, and the unique constraint standing in for a lookup."""

from __future__ import annotations

import json

from tests.factories import batch_body, ledger_state, make_account
from videobatch.schemas.batch import BatchCreateSchema
from videobatch.services.idempotency import IdempotencyGate

URL = "/api/enterprise/video-batch"


def post_raw(client, key, raw: str, request_id="req-1"):
    return client.post(
        URL,
        data=raw,
        content_type="application/json",
        headers={"x-api-key": key, "x-request-id": request_id},
    )


def count_loads(monkeypatch) -> list[int]:
    """Count every create payload validated from now on."""
    calls: list[int] = []
    original = BatchCreateSchema.load

    def counting_load(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(BatchCreateSchema, "load", counting_load)
    return calls


def test_replay_of_the_same_bytes_is_not_validated_again(app, client, monkeypatch):
    account = make_account(app)
    raw = json.dumps(batch_body(3))
    first = post_raw(client, account.api_key, raw).get_json()
    loads = count_loads(monkeypatch)
    replay = post_raw(client, account.api_key, raw)
    assert replay.status_code == 200
    assert replay.get_json()["batch_id"] == first["batch_id"]
    assert loads == []


def test_replay_of_other_bytes_is_validated_and_compared(app, client, monkeypatch):
    account = make_account(app)
    post_raw(client, account.api_key, json.dumps(batch_body(3)))
    loads = count_loads(monkeypatch)
    same_payload = post_raw(client, account.api_key, json.dumps(batch_body(3), indent=2))
    assert same_payload.status_code == 200
    different = post_raw(client, account.api_key, json.dumps(batch_body(4)))
    assert different.status_code == 422
    assert len(loads) == 2
    assert ledger_state(app, account.account_id)["charges"] == 1


def test_create_caches_the_batch_and_frees_the_lock_together(app, client):
    account = make_account(app)
    first = post_raw(client, account.api_key, json.dumps(batch_body())).get_json()
    redis = app.extensions["videobatch.redis"].get()
    cached = json.loads(redis.get(IdempotencyGate._cache_key(account.account_id, "req-1")))
    assert cached["batch_id"] == first["batch_id"]
    assert cached["body"]
    assert redis.get(IdempotencyGate._lock_key(account.account_id, "req-1")) is None


def test_replay_after_cache_loss_caches_the_batch_again(app, client):
    account = make_account(app)
    raw = json.dumps(batch_body())
    first = post_raw(client, account.api_key, raw).get_json()
    redis = app.extensions["videobatch.redis"].get()
    redis.flushdb()
    assert post_raw(client, account.api_key, raw).status_code == 200
    cached = json.loads(redis.get(IdempotencyGate._cache_key(account.account_id, "req-1")))
    assert cached["batch_id"] == first["batch_id"]
    assert ledger_state(app, account.account_id)["charges"] == 1


def test_different_payload_after_cache_loss_is_422_and_writes_nothing(app, client):
    account = make_account(app)
    post_raw(client, account.api_key, json.dumps(batch_body(2)))
    app.extensions["videobatch.redis"].get().flushdb()
    response = post_raw(client, account.api_key, json.dumps(batch_body(5)))
    assert response.status_code == 422
    assert response.get_json()["code"] == "idempotency_key_reused"
    state = ledger_state(app, account.account_id)
    assert (state["charges"], state["batches"], state["tasks"], state["balance"]) == (
        1,
        1,
        2,
        980,
    )
