"""Rate limits: per API key on the public API, per worker host on the internal API."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from flask import Flask

from tests.conftest import TEST_SECRET, base_config, free_port
from tests.factories import batch_body, ledger_state, make_account
from videobatch.app import create_app

CREATE = "/api/enterprise/video-batch"


def limited(app: Flask, **limits) -> Flask:
    """A second app on the same database and Redis as ``app``, with other limits."""
    return create_app(app.extensions["videobatch.config"].replace(**limits))


@pytest.fixture
def strict_app(app: Flask) -> Iterator[Flask]:
    # Hour-long windows: a test's few requests never straddle a window edge, where the sliding
    # window would weigh the earlier ones down and let one more through.
    strict = limited(app, rate_limit_default="3 per hour", rate_limit_internal="2 per hour")
    yield strict
    strict.extensions["videobatch.db"].dispose()


@pytest.fixture
def short_window_app(app: Flask) -> Iterator[Flask]:
    short = limited(app, rate_limit_default="3 per 2 seconds")
    yield short
    short.extensions["videobatch.db"].dispose()


def post_batch(client, api_key: str, request_id: str):
    return client.post(
        CREATE, json=batch_body(), headers={"x-api-key": api_key, "x-request-id": request_id}
    )


def test_over_the_limit_answers_429_with_retry_after(strict_app):
    account = make_account(strict_app)
    client = strict_app.test_client()
    assert [post_batch(client, account.api_key, f"rl-{i}").status_code for i in range(3)] == [
        201
    ] * 3

    response = post_batch(client, account.api_key, "rl-3")
    assert response.status_code == 429
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["code"] == "rate_limited"
    assert body["status"] == 429
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 3600
    assert body["retry_after"] == retry_after


def test_a_limited_request_id_is_not_claimed_and_succeeds_after_the_window(short_window_app):
    account = make_account(short_window_app)
    client = short_window_app.test_client()
    # Send until limited (a window edge may let a fourth through), the limited id being the last.
    created, request_id = 0, None
    for i in range(10):
        request_id = f"warm-{i}"
        limited_response = post_batch(client, account.api_key, request_id)
        if limited_response.status_code == 429:
            break
        assert limited_response.status_code == 201
        created += 1
    assert limited_response.status_code == 429
    assert ledger_state(short_window_app, account.account_id)["batches"] == created
    retry_after = int(limited_response.headers["Retry-After"])
    assert 1 <= retry_after <= 2

    time.sleep(retry_after)
    retried = post_batch(client, account.api_key, request_id)
    assert retried.status_code == 201  # a new batch, not a replay: the 429 claimed nothing
    assert retried.get_json()["idempotent_replay"] is False
    assert ledger_state(short_window_app, account.account_id)["batches"] == created + 1


def test_limits_are_per_api_key(strict_app):
    first = make_account(strict_app, name="first")
    second = make_account(strict_app, name="second")
    client = strict_app.test_client()
    for i in range(3):
        assert post_batch(client, first.api_key, f"a-{i}").status_code == 201
    assert post_batch(client, first.api_key, "a-3").status_code == 429
    assert post_batch(client, second.api_key, "b-0").status_code == 201


def test_the_internal_api_has_its_own_limit(strict_app):
    account = make_account(strict_app)
    client = strict_app.test_client()
    for i in range(3):
        assert post_batch(client, account.api_key, f"pub-{i}").status_code == 201
    assert post_batch(client, account.api_key, "pub-3").status_code == 429  # public budget spent

    claims = [
        client.post(
            "/api/internal/tasks/claim",
            json={"worker_id": "w1", "max_tasks": 1},
            headers={"x-internal-secret": TEST_SECRET},
        )
        for _ in range(3)
    ]
    assert [claim.status_code for claim in claims] == [200, 200, 429]
    assert claims[2].get_json()["code"] == "rate_limited"
    assert int(claims[2].headers["Retry-After"]) >= 1


def test_health_and_metrics_are_never_limited(strict_app):
    client = strict_app.test_client()
    for _ in range(10):
        assert client.get("/healthz").status_code == 200
        assert client.get("/metrics").status_code == 200


def test_limits_hold_and_nothing_fails_while_redis_is_down(sqlite_url):
    """The limiter falls back to per-process counters instead of failing requests."""
    config = base_config(
        database_url=sqlite_url,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
        rate_limit_default="3 per hour",
    )
    app = create_app(config)
    try:
        account = make_account(app, name="redis-down")
        client = app.test_client()
        statuses = [post_batch(client, account.api_key, f"down-{i}").status_code for i in range(4)]
        assert statuses == [201, 201, 201, 429]
    finally:
        app.extensions["videobatch.db"].dispose()


def test_limits_can_be_switched_off(app):
    relaxed = limited(app, rate_limit_enabled=False, rate_limit_default="1 per minute")
    try:
        account = make_account(relaxed)
        client = relaxed.test_client()
        assert [post_batch(client, account.api_key, f"off-{i}").status_code for i in range(3)] == [
            201
        ] * 3
    finally:
        relaxed.extensions["videobatch.db"].dispose()
