"""Faults inside one create, and requests that overlap in flight (real PostgreSQL + Redis)."""

from __future__ import annotations

import threading
import time

import pytest

from tests.conftest import _make_app, base_config
from tests.factories import batch_body, ledger_state, make_account
from videobatch.services import batches, ledger

pytestmark = pytest.mark.services

URL = "/api/enterprise/video-batch"


def post(app, api_key, request_id, body=None):
    return app.test_client().post(
        URL, json=body or batch_body(), headers={"x-api-key": api_key, "x-request-id": request_id}
    )


def test_failure_after_charge_before_commit_persists_nothing(pg_app, monkeypatch):
    account = make_account(pg_app)
    real_charge = ledger.charge_for_batch

    def charge_then_crash(*args, **kwargs):
        real_charge(*args, **kwargs)
        raise RuntimeError("connection lost before COMMIT")

    monkeypatch.setattr(ledger, "charge_for_batch", charge_then_crash)
    response = post(pg_app, account.api_key, "crashy")
    assert response.status_code == 500
    assert response.get_json()["code"] == "internal_error"
    assert ledger_state(pg_app, account.account_id) == {
        "balance": 1000,
        "ledger_sum": 1000,
        "charges": 0,
        "batches": 0,
        "tasks": 0,
    }

    monkeypatch.setattr(ledger, "charge_for_batch", real_charge)
    retry = post(pg_app, account.api_key, "crashy")
    assert retry.status_code == 201
    assert post(pg_app, account.api_key, "crashy").status_code == 200
    assert ledger_state(pg_app, account.account_id) == {
        "balance": 980,
        "ledger_sum": 980,
        "charges": 1,
        "batches": 1,
        "tasks": 2,
    }


def slow_create(monkeypatch, seconds: float) -> None:
    real_create = batches.create_batch

    def create_slowly(*args, **kwargs):
        time.sleep(seconds)
        return real_create(*args, **kwargs)

    monkeypatch.setattr(batches, "create_batch", create_slowly)


def run_in_thread(target) -> tuple[threading.Thread, dict]:
    result: dict = {}
    thread = threading.Thread(target=lambda: result.setdefault("response", target()))
    thread.start()
    return thread, result


def test_duplicate_in_flight_waits_for_the_first_and_replays(pg_app, monkeypatch):
    account = make_account(pg_app)
    slow_create(monkeypatch, 0.6)
    thread, first = run_in_thread(lambda: post(pg_app, account.api_key, "in-flight"))
    time.sleep(0.15)  # the first request now holds the lock
    second = post(pg_app, account.api_key, "in-flight")
    thread.join()
    assert first["response"].status_code == 201
    assert second.status_code == 200
    assert second.get_json()["batch_id"] == first["response"].get_json()["batch_id"]
    assert ledger_state(pg_app, account.account_id)["charges"] == 1


@pytest.fixture
def impatient_app(postgres_url, redis_url):
    yield from _make_app(
        base_config(database_url=postgres_url, redis_url=redis_url, idempotency_wait_ms=200)
    )


def test_duplicate_still_in_flight_after_the_wait_is_409(impatient_app, monkeypatch):
    account = make_account(impatient_app)
    slow_create(monkeypatch, 1.0)
    thread, first = run_in_thread(lambda: post(impatient_app, account.api_key, "slow"))
    time.sleep(0.15)
    second = post(impatient_app, account.api_key, "slow")
    assert second.status_code == 409
    assert second.get_json()["code"] == "request_in_progress"
    assert second.headers["Retry-After"] == "1"
    thread.join()
    assert first["response"].status_code == 201
    later = post(impatient_app, account.api_key, "slow")
    assert later.status_code == 200
    assert ledger_state(impatient_app, account.account_id)["charges"] == 1


def test_lock_lost_mid_request_still_yields_one_batch(pg_app, monkeypatch):
    """Both requests run the create (the lock expired); the unique constraint fences one."""
    account = make_account(pg_app)
    gate = pg_app.extensions["videobatch.idempotency"]
    monkeypatch.setattr(gate, "_lock_ttl_ms", 50)  # expires while the first is still working
    slow_create(monkeypatch, 0.5)
    thread, first = run_in_thread(lambda: post(pg_app, account.api_key, "expired-lock"))
    time.sleep(0.2)
    second = post(pg_app, account.api_key, "expired-lock")
    thread.join()
    statuses = sorted([first["response"].status_code, second.status_code])
    assert statuses == [200, 201]
    assert ledger_state(pg_app, account.account_id) == {
        "balance": 980,
        "ledger_sum": 980,
        "charges": 1,
        "batches": 1,
        "tasks": 2,
    }


def test_different_payload_while_first_in_flight_is_422(pg_app, monkeypatch):
    account = make_account(pg_app)
    slow_create(monkeypatch, 0.5)
    thread, first = run_in_thread(lambda: post(pg_app, account.api_key, "mixed"))
    time.sleep(0.15)
    second = post(pg_app, account.api_key, "mixed", batch_body(5))
    thread.join()
    assert first["response"].status_code == 201
    assert second.status_code == 422
    assert ledger_state(pg_app, account.account_id)["batches"] == 1
