"""The worker loop in-process on both tiers: claiming, reporting, provider errors, cancel."""

from __future__ import annotations

import threading
import time

import pytest

from tests.factories import make_account
from tests.worker_api import assert_money_balanced, batch_detail, create_batch, refunds
from videobatch.worker.clients import LocalTaskClient
from videobatch.worker.providers import GenerationResult, ProviderError
from videobatch.worker.providers.simulated import SimulatedProvider
from videobatch.worker.runner import Worker, run_once


@pytest.fixture
def local_client(app) -> LocalTaskClient:
    config = app.extensions["videobatch.config"].replace(retry_base_delay_s=0.02)
    return LocalTaskClient(app.extensions["videobatch.db"], config, worker_id="test-worker")


def wait_for_status(client, key, batch_id, status, timeout=15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        detail = batch_detail(client, key, batch_id)
        if detail["status"] == status:
            return detail
        assert time.monotonic() < deadline, detail
        time.sleep(0.05)


class FlakyProvider:
    """Raises an unexpected error on a task's first attempt, succeeds after."""

    name = "flaky"

    def generate(self, task):
        if task.attempt == 1:
            raise RuntimeError("segfault in the encoder")
        return GenerationResult(video_url=f"https://v.example/{task.task_id}.mp4")


class EmptyProvider:
    name = "empty"

    def generate(self, task):
        return None


class RejectingProvider:
    name = "rejecting"

    def generate(self, task):
        raise ProviderError("prompt_rejected", "not allowed", retryable=False)


class SlowProvider:
    """Works until told to stop."""

    name = "slow"

    def __init__(self) -> None:
        self.started = threading.Event()

    def generate(self, task):
        self.started.set()
        if task.stop_requested.wait(20):
            raise ProviderError("stopped", "stopped")
        return GenerationResult(video_url="https://v.example/late.mp4")


def test_worker_thread_completes_every_task_then_stops(app, client, local_client):
    account = make_account(app)
    created = create_batch(client, account.api_key, count=7)
    worker = Worker(local_client, SimulatedProvider(), concurrency=3, poll_interval_s=0.05)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        detail = wait_for_status(client, account.api_key, created["batch_id"], "completed")
    finally:
        worker.stop()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert worker.stats.outcomes == {"completed": 7}
    assert all(task["attempts"] == 1 and task["video_url"] for task in detail["tasks"])
    assert assert_money_balanced(app, account.account_id)["balance"] == 930


def test_unexpected_provider_error_is_retried(app, client, local_client):
    account = make_account(app)
    created = create_batch(client, account.api_key, count=1)
    first = run_once(local_client, FlakyProvider(), max_tasks=5)
    assert [(r.outcome, r.error_code) for r in first] == [("requeued", "provider_error")]
    time.sleep(0.05)
    second = run_once(local_client, FlakyProvider(), max_tasks=5)
    assert [r.outcome for r in second] == ["completed"]
    detail = wait_for_status(client, account.api_key, created["batch_id"], "completed")
    assert detail["tasks"][0]["attempts"] == 2


@pytest.mark.parametrize(
    ("provider", "code", "outcome"),
    [
        (EmptyProvider(), "provider_error", "requeued"),
        (RejectingProvider(), "prompt_rejected", "failed"),
    ],
)
def test_provider_failures_are_reported(app, client, local_client, provider, code, outcome):
    account = make_account(app)
    create_batch(client, account.api_key, count=1)
    results = run_once(local_client, provider, max_tasks=1)
    assert [(r.outcome, r.error_code) for r in results] == [(outcome, code)]


def test_cancel_stops_a_running_generation_and_refunds_it(app, client, local_client):
    account = make_account(app)
    created = create_batch(client, account.api_key, count=1)
    provider = SlowProvider()
    worker = Worker(local_client, provider, lease_seconds=1, poll_interval_s=0.05)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        assert provider.started.wait(10)
        cancel = client.post(
            f"/api/enterprise/video-batch/{created['batch_id']}/cancel",
            headers={"x-api-key": account.api_key},
        )
        assert cancel.status_code == 200
        # the next heartbeat (every lease/3 s) hears of the cancel and stops the provider
        detail = wait_for_status(client, account.api_key, created["batch_id"], "cancelled")
    finally:
        worker.stop()
        thread.join(timeout=10)
    assert detail["tasks"][0]["error"]["code"] == "batch_cancelled"
    assert worker.stats.outcomes == {"cancelled": 1}
    assert len(refunds(app, account.account_id)) == 1
    assert assert_money_balanced(app, account.account_id)["balance"] == 1000


def test_stop_past_the_drain_timeout_releases_the_task(app, client, local_client):
    account = make_account(app)
    created = create_batch(client, account.api_key, count=1)
    provider = SlowProvider()
    worker = Worker(local_client, provider, poll_interval_s=0.05, drain_timeout_s=0.1)
    thread = threading.Thread(target=worker.run)
    thread.start()
    assert provider.started.wait(10)
    worker.stop()
    thread.join(timeout=10)
    assert not thread.is_alive()
    detail = batch_detail(client, account.api_key, created["batch_id"])
    assert detail["tasks"][0]["status"] == "queued"
    assert detail["tasks"][0]["error"]["code"] == "worker_shutdown"
    assert worker.stats.outcomes == {"requeued": 1}
