"""/healthz, /readyz, and what a dependency that is down or stuck costs a request."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy.engine import make_url

from tests.conftest import base_config
from tests.factories import batch_body, make_account
from tests.support.outages import TcpProxy, ThrowawayRedis
from videobatch.app import create_app

READINESS_TIMEOUT_S = 1.0
CONNECT_TIMEOUT_S = 3  # longer than the readiness deadline: a stuck connect must not win the race


def test_healthz_answers_without_consulting_dependencies(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"ok": True}


def test_readyz_reports_each_dependency_when_ready(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["ok"] is True
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is True


# -- outages, on dependencies of our own -------------------------------------------------------


@pytest.fixture
def postgres_proxy(postgres_url: str) -> Iterator[TcpProxy]:
    url = make_url(postgres_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    yield proxy
    proxy.cut()


@pytest.fixture
def throwaway_redis() -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis().start()
    yield server
    server.stop()


@pytest.fixture
def outage_app(postgres_url, postgres_proxy, throwaway_redis) -> Iterator[Flask]:
    """The app on PostgreSQL through a proxy we can cut and on a Redis we can stop."""
    config = base_config(
        database_url=make_url(postgres_url).set(port=postgres_proxy.port).render_as_string(False),
        redis_url=throwaway_redis.url,
        readiness_timeout_s=READINESS_TIMEOUT_S,
        db_connect_timeout_s=CONNECT_TIMEOUT_S,
        db_pool_timeout_s=1,
    )
    app = create_app(config)
    yield app
    app.extensions["videobatch.db"].dispose()


def timed_get(client, path: str):
    started = time.monotonic()
    response = client.get(path)
    return response, time.monotonic() - started


def wait_until_ready(client, within_s: float = 10):
    deadline = time.monotonic() + within_s
    while True:
        response = client.get("/readyz")
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


@pytest.mark.services
def test_readyz_turns_503_naming_postgres_when_it_stops_and_recovers(outage_app, postgres_proxy):
    client = outage_app.test_client()
    assert wait_until_ready(client).status_code == 200

    postgres_proxy.cut()
    response, elapsed = timed_get(client, "/readyz")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["code"] == "service_unavailable"
    assert body["failed"] == ["database"]
    assert body["checks"]["redis"]["ok"] is True
    assert elapsed < READINESS_TIMEOUT_S + 1

    postgres_proxy.restore()
    assert wait_until_ready(client).status_code == 200


@pytest.mark.services
def test_readyz_answers_503_in_bounded_time_when_postgres_hangs(outage_app, postgres_proxy):
    client = outage_app.test_client()
    assert wait_until_ready(client).status_code == 200
    outage_app.extensions["videobatch.db"].dispose()  # new connections meet the stuck server

    postgres_proxy.hang()
    response, elapsed = timed_get(client, "/readyz")
    assert response.status_code == 503
    assert response.get_json()["failed"] == ["database"]
    assert "no answer within" in response.get_json()["checks"]["database"]["error"]
    assert elapsed < READINESS_TIMEOUT_S + 1

    postgres_proxy.restore()
    assert wait_until_ready(client).status_code == 200


@pytest.mark.services
def test_readyz_turns_503_naming_redis_when_it_stops_and_recovers(outage_app, throwaway_redis):
    client = outage_app.test_client()
    assert wait_until_ready(client).status_code == 200

    throwaway_redis.stop()
    response, elapsed = timed_get(client, "/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["failed"] == ["redis"]
    assert body["checks"]["database"]["ok"] is True
    assert response.headers["Retry-After"]
    assert elapsed < READINESS_TIMEOUT_S + 1

    throwaway_redis.start()
    assert wait_until_ready(client).status_code == 200


@pytest.mark.services
def test_create_answers_503_in_bounded_time_while_postgres_is_stuck(outage_app, postgres_proxy):
    account = make_account(outage_app)
    client = outage_app.test_client()
    outage_app.extensions["videobatch.db"].dispose()
    postgres_proxy.hang()

    started = time.monotonic()
    response = client.post(
        "/api/enterprise/video-batch",
        json=batch_body(),
        headers={"x-api-key": account.api_key, "x-request-id": "stuck-1"},
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "service_unavailable"
    assert response.headers["Retry-After"] == "1"
    assert elapsed < CONNECT_TIMEOUT_S + 2  # bounded by DB_CONNECT_TIMEOUT_S, not gunicorn's 30 s

    postgres_proxy.restore()
    retried = client.post(
        "/api/enterprise/video-batch",
        json=batch_body(),
        headers={"x-api-key": account.api_key, "x-request-id": "stuck-1"},
    )
    assert retried.status_code == 201  # the failed attempt did not claim the request id


@pytest.mark.services
def test_create_and_replay_keep_working_while_redis_is_down(outage_app, throwaway_redis):
    account = make_account(outage_app)
    client = outage_app.test_client()
    headers = {"x-api-key": account.api_key, "x-request-id": "redis-down-1"}
    throwaway_redis.stop()

    created = client.post("/api/enterprise/video-batch", json=batch_body(), headers=headers)
    replayed = client.post("/api/enterprise/video-batch", json=batch_body(), headers=headers)
    assert created.status_code == 201, created.get_json()
    assert replayed.status_code == 200
    assert replayed.get_json()["batch_id"] == created.get_json()["batch_id"]
