"""SPEC 9, guarantees 1-3, on the real PostgreSQL and Redis through a live gunicorn."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests

from tests.conftest import server_env, start_gunicorn, stop_process
from tests.factories import batch_body, ledger_state, make_account
from tests.support.outages import ThrowawayRedis

pytestmark = pytest.mark.services


def post_all_at_once(url: str, requests_to_send: list[tuple[str, str, dict]]) -> list:
    """Send every (api_key, request_id, body) from its own thread, released together."""
    barrier = threading.Barrier(len(requests_to_send))

    def send(job):
        api_key, request_id, body = job
        with requests.Session() as session:
            barrier.wait()
            return session.post(
                f"{url}/api/enterprise/video-batch",
                json=body,
                timeout=60,
                headers={"x-api-key": api_key, "x-request-id": request_id},
            )

    with ThreadPoolExecutor(max_workers=len(requests_to_send)) as pool:
        return list(pool.map(send, requests_to_send))


def test_fifty_concurrent_identical_posts_make_one_batch_and_one_charge(live_server):
    account = make_account(live_server.app, credits=1000)
    body = batch_body(3)
    responses = post_all_at_once(live_server.url, [(account.api_key, "same-id", body)] * 50)

    statuses = [response.status_code for response in responses]
    assert set(statuses) <= {200, 201, 409}, statuses
    assert statuses.count(201) == 1
    batch_ids = {r.json()["batch_id"] for r in responses if r.status_code in (200, 201)}
    assert len(batch_ids) == 1
    for response in responses:
        if response.status_code == 200:
            assert response.json()["idempotent_replay"] is True
            assert response.headers["Idempotent-Replayed"] == "true"
        if response.status_code == 409:
            assert response.json()["code"] == "request_in_progress"
            assert response.headers["Retry-After"]
    assert ledger_state(live_server.app, account.account_id) == {
        "balance": 970,
        "ledger_sum": 970,
        "charges": 1,
        "batches": 1,
        "tasks": 3,
    }


def test_concurrent_distinct_requests_never_overdraw(live_server):
    account = make_account(live_server.app, credits=140)  # seven 2-item batches at 10 each
    jobs = [(account.api_key, f"order-{i}", batch_body(2)) for i in range(40)]
    responses = post_all_at_once(live_server.url, jobs)

    statuses = [response.status_code for response in responses]
    assert set(statuses) <= {201, 402}, statuses
    assert statuses.count(201) == 7
    for response in responses:
        if response.status_code == 402:
            assert response.json()["code"] == "insufficient_credits"
    state = ledger_state(live_server.app, account.account_id)
    assert state == {"balance": 0, "ledger_sum": 0, "charges": 7, "batches": 7, "tasks": 14}


def test_replay_after_redis_flush_answers_from_database(live_server, redis_url):
    account = make_account(live_server.app)
    first = live_server.post_batch(account.api_key, "flush-me", batch_body())
    assert first.status_code == 201
    redis.Redis.from_url(redis_url).flushdb()

    replay = live_server.post_batch(account.api_key, "flush-me", batch_body())
    assert replay.status_code == 200
    assert replay.json()["batch_id"] == first.json()["batch_id"]
    assert replay.json()["idempotent_replay"] is True
    assert ledger_state(live_server.app, account.account_id)["charges"] == 1


@pytest.fixture
def own_redis():
    """A Redis server of this test's own, which the test may stop."""
    server = ThrowawayRedis().start()
    yield server
    server.stop()


def test_redis_down_replays_from_database_and_never_double_charges(pg_app, postgres_url, own_redis):
    server_url, server = start_gunicorn(server_env(postgres_url, own_redis.url), workers=2)
    try:
        account = make_account(pg_app)
        before = requests.post(
            f"{server_url}/api/enterprise/video-batch",
            json=batch_body(),
            headers={"x-api-key": account.api_key, "x-request-id": "before-outage"},
            timeout=30,
        )
        assert before.status_code == 201

        own_redis.stop()

        replays = post_all_at_once(
            server_url, [(account.api_key, "before-outage", batch_body())] * 10
        )
        assert [r.status_code for r in replays] == [200] * 10
        assert {r.json()["batch_id"] for r in replays} == {before.json()["batch_id"]}

        # New creates still work: the database's unique constraint fences duplicates alone.
        duplicates = post_all_at_once(
            server_url, [(account.api_key, "during-outage", batch_body())] * 20
        )
        statuses = [r.status_code for r in duplicates]
        assert set(statuses) <= {200, 201}, statuses
        assert statuses.count(201) == 1
        assert len({r.json()["batch_id"] for r in duplicates}) == 1
    finally:
        stop_process(server)
    assert ledger_state(pg_app, account.account_id) == {
        "balance": 960,
        "ledger_sum": 960,
        "charges": 2,
        "batches": 2,
        "tasks": 4,
    }
