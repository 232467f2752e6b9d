"""Tasks through their life on both tiers: claim, heartbeat, complete, fail, reap (SPEC 6, 7).

Every scenario checks the batch's status and counts after each transition and ends with the
money invariant, balance == sum(ledger).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from tests.factories import batch_body, make_account
from tests.worker_api import (
    InternalApi,
    assert_money_balanced,
    batch_detail,
    batch_row,
    create_batch,
    refunds,
    task_row,
)
from videobatch.models import BatchJob
from videobatch.services import tasks


@pytest.fixture
def api(client) -> InternalApi:
    return InternalApi(client)


@pytest.fixture
def fast_retries(app):
    """Retries wait 20-40 ms instead of seconds."""
    config = app.extensions["videobatch.config"]
    app.extensions["videobatch.config"] = config.replace(retry_base_delay_s=0.04)


def counts(client, key, batch_id) -> tuple[str, dict]:
    detail = batch_detail(client, key, batch_id)
    return detail["status"], {k: v for k, v in detail["counts"].items() if v}


def replay_status(client, key, created) -> str:
    response = client.post(
        "/api/enterprise/video-batch",
        json=batch_body(created["total_count"]),
        headers={"x-api-key": key, "x-request-id": created["request_id"]},
    )
    assert response.status_code == 200
    assert response.get_json()["idempotent_replay"] is True
    return response.get_json()["status"]


def test_claim_hands_out_tasks_with_a_lease(app, client, api):
    account = make_account(app)
    created = create_batch(client, account.api_key, count=3)
    before = datetime.now(UTC)
    claimed = api.claim(max_tasks=2, lease_seconds=30, worker_id="gpu-7")
    assert len(claimed) == 2
    assert [task["position"] for task in claimed] == [0, 1]
    for task in claimed:
        assert set(task) == {
            "task_id", "batch_id", "position", "prompt", "params", "attempt", "max_attempts",
            "lease_token", "lease_expires_at",
        }  # fmt: skip
        assert task["batch_id"] == created["batch_id"]
        assert task["attempt"] == 1
        assert task["params"] == {"duration_seconds": 5, "aspect_ratio": "16:9"}
        assert len(task["lease_token"]) >= 32
        expires = datetime.fromisoformat(task["lease_expires_at"].replace("Z", "+00:00"))
        assert before + timedelta(seconds=29) < expires < before + timedelta(seconds=32)
        row = task_row(app, task["task_id"])
        assert (row.status, row.leased_by, row.attempts) == ("processing", "gpu-7", 1)
        assert row.started_at is not None
    assert claimed[0]["lease_token"] != claimed[1]["lease_token"]
    assert counts(client, account.api_key, created["batch_id"]) == (
        "processing",
        {"processing": 2, "queued": 1},
    )
    assert replay_status(client, account.api_key, created) == "processing"


def test_claims_never_hand_out_a_task_twice_and_take_oldest_first(app, client, api):
    account = make_account(app)
    first = create_batch(client, account.api_key, count=2)
    second = create_batch(client, account.api_key, count=2)
    seen = [api.claim()[0] for _ in range(4)]
    assert len({task["task_id"] for task in seen}) == 4
    assert [task["batch_id"] for task in seen] == [first["batch_id"]] * 2 + [second["batch_id"]] * 2
    assert api.claim(max_tasks=10) == []


def test_complete_ends_the_task_and_the_batch(app, client, api):
    account = make_account(app)
    created = create_batch(client, account.api_key)
    first, second = api.claim(max_tasks=2)
    response = api.complete(first, "https://cdn.example.com/a.mp4")
    assert response.status_code == 200
    body = response.get_json()
    assert (body["status"], body["replay"], body["batch_status"]) == (
        "completed",
        False,
        "processing",
    )
    assert counts(client, account.api_key, created["batch_id"]) == (
        "processing",
        {"completed": 1, "processing": 1},
    )
    assert api.complete(second).get_json()["batch_status"] == "completed"
    detail = batch_detail(client, account.api_key, created["batch_id"])
    assert detail["status"] == "completed" and detail["finished_at"] is not None
    assert detail["tasks"][0]["video_url"] == "https://cdn.example.com/a.mp4"
    assert replay_status(client, account.api_key, created) == "completed"
    state = assert_money_balanced(app, account.account_id)
    assert state["balance"] == 980  # charged once, nothing refunded


def test_repeated_complete_with_the_same_token_is_a_replay(app, client, api):
    account = make_account(app)
    create_batch(client, account.api_key, count=1)
    task = api.claim()[0]
    assert api.complete(task, "https://cdn.example.com/a.mp4").status_code == 200
    again = api.complete(task, "https://cdn.example.com/other.mp4")
    assert again.status_code == 200
    assert again.get_json()["replay"] is True
    assert again.get_json()["video_url"] == "https://cdn.example.com/a.mp4"
    assert task_row(app, task["task_id"]).video_url == "https://cdn.example.com/a.mp4"


@pytest.mark.parametrize("verb", ["complete", "fail", "heartbeat"])
def test_wrong_token_is_lease_lost_and_changes_nothing(app, client, api, verb):
    account = make_account(app)
    create_batch(client, account.api_key, count=1)
    task = api.claim()[0]
    before = task_row(app, task["task_id"])
    response = getattr(api, verb)(task, token="0" * 32)
    assert response.status_code == 409
    assert response.get_json()["code"] == "lease_lost"
    after = task_row(app, task["task_id"])
    assert (after.status, after.lease_expires_at, after.attempts, after.video_url) == (
        before.status,
        before.lease_expires_at,
        before.attempts,
        before.video_url,
    )
    assert refunds(app, account.account_id) == []


def test_retryable_failure_requeues_with_backoff(app, client, api):
    account = make_account(app)
    created = create_batch(client, account.api_key, count=1)
    task = api.claim()[0]
    before = datetime.now(UTC)
    response = api.fail(task, retryable=True)
    assert response.status_code == 200
    body = response.get_json()
    assert (body["status"], body["refunded"], body["attempts"]) == ("queued", False, 1)
    retry_at = datetime.fromisoformat(body["retry_at"].replace("Z", "+00:00"))
    # base 2 s, first retry: between half and all of it
    assert before + timedelta(seconds=0.9) < retry_at < before + timedelta(seconds=2.5)
    assert api.claim() == []  # not before its run_after
    assert counts(client, account.api_key, created["batch_id"]) == ("processing", {"queued": 1})
    row = task_row(app, task["task_id"])
    assert (row.error_code, row.error_message) == ("gpu_oom", "out of memory")
    assert api.complete(task).status_code == 409  # the lease ended with the report
    assert refunds(app, account.account_id) == []


def test_exhausted_retries_fail_the_task_with_one_refund(app, client, api, fast_retries):
    account = make_account(app)
    created = create_batch(client, account.api_key, count=1)
    for attempt in (1, 2, 3):
        task = _claim_when_ready(api)
        assert task["attempt"] == attempt
        body = api.fail(task, retryable=True).get_json()
        assert body["attempts"] == attempt
        expected = "queued" if attempt < 3 else "failed"
        assert body["status"] == expected
        assert counts(client, account.api_key, created["batch_id"])[0] == (
            "processing" if attempt < 3 else "failed"
        )
    assert body["refunded"] is True
    again = api.fail(task, retryable=True)
    assert again.status_code == 200 and again.get_json()["replay"] is True
    assert len(refunds(app, account.account_id)) == 1
    state = assert_money_balanced(app, account.account_id)
    assert state["balance"] == 1000
    assert batch_row(app, created["batch_id"]).finished_at is not None
    assert replay_status(client, account.api_key, created) == "failed"
    assert api.claim() == []


def test_non_retryable_failure_ends_at_once_and_mixed_batch_is_partial(app, client, api):
    account = make_account(app)
    created = create_batch(client, account.api_key)
    first, second = api.claim(max_tasks=2)
    body = api.fail(first, retryable=False, code="prompt_rejected").get_json()
    assert (body["status"], body["refunded"], body["attempts"]) == ("failed", True, 1)
    assert api.complete(second).status_code == 200
    assert counts(client, account.api_key, created["batch_id"]) == (
        "partially_completed",
        {"completed": 1, "failed": 1},
    )
    detail = batch_detail(client, account.api_key, created["batch_id"])
    assert detail["tasks"][0]["error"]["code"] == "prompt_rejected"
    assert detail["tasks"][0]["video_url"] is None
    state = assert_money_balanced(app, account.account_id)
    assert state["balance"] == 990
    assert replay_status(client, account.api_key, created) == "partially_completed"


def test_heartbeat_extends_the_lease(app, client, api):
    account = make_account(app)
    create_batch(client, account.api_key, count=1)
    task = api.claim(lease_seconds=5)[0]
    response = api.heartbeat(task, lease_seconds=600)
    assert response.status_code == 200
    body = response.get_json()
    assert body["cancel_requested"] is False
    row = task_row(app, task["task_id"])
    assert row.lease_expires_at > datetime.now(UTC) + timedelta(seconds=500)
    assert row.run_after == row.lease_expires_at


def test_expired_lease_is_claimed_again_and_the_old_token_is_refused(app, client, api):
    account = make_account(app)
    created = create_batch(client, account.api_key, count=1)
    old = api.claim(lease_seconds=1, worker_id="dead")[0]
    assert api.claim(worker_id="alive") == []  # still leased
    time.sleep(1.1)
    new = api.claim(worker_id="alive")[0]
    assert new["task_id"] == old["task_id"]
    assert (new["attempt"], new["lease_token"] != old["lease_token"]) == (2, True)
    late = api.complete(old)
    assert late.status_code == 409 and late.get_json()["code"] == "lease_lost"
    assert api.heartbeat(old).status_code == 409
    assert api.fail(old).status_code == 409
    row = task_row(app, old["task_id"])
    assert (row.status, row.leased_by, row.video_url) == ("processing", "alive", None)
    assert api.complete(new).status_code == 200
    assert counts(client, account.api_key, created["batch_id"]) == ("completed", {"completed": 1})
    assert_money_balanced(app, account.account_id)


def test_reaper_requeues_then_fails_and_refunds_exhausted_leases(app, client, api):
    account = make_account(app)
    created = create_batch(client, account.api_key, count=1)
    database = app.extensions["videobatch.db"]
    now = datetime.now(UTC)
    for attempt in (1, 2, 3):
        with database.transaction() as session:
            claimed = tasks.claim_tasks(
                session, worker_id="w", max_tasks=1, lease_seconds=1, now=now
            )
        assert [task.attempt for task in claimed] == [attempt]
        now += timedelta(seconds=2)
        with database.transaction() as session:
            report = tasks.reap_expired_leases(session, now=now)
        if attempt < 3:
            assert (report.requeued, report.failed) == (1, 0)
            assert counts(client, account.api_key, created["batch_id"]) == (
                "processing",
                {"queued": 1},
            )
            # the reaped lease's token is dead
            stale = {"task_id": str(claimed[0].task_id), "lease_token": claimed[0].lease_token}
            assert api.complete(stale).status_code == 409
    assert (report.requeued, report.failed) == (0, 1)
    row = task_row(app, claimed[0].task_id)
    assert (row.status, row.error_code) == ("failed", "lease_expired")
    assert counts(client, account.api_key, created["batch_id"]) == ("failed", {"failed": 1})
    with database.transaction() as session:
        assert tasks.reap_expired_leases(session, now=now + timedelta(hours=1)).total == 0
    assert len(refunds(app, account.account_id)) == 1
    assert assert_money_balanced(app, account.account_id)["balance"] == 1000


def test_cancel_stops_claims_and_running_tasks_end_cancelled_and_refunded(app, client, api):
    account = make_account(app)
    created = create_batch(client, account.api_key, count=4)
    running = api.claim(max_tasks=3)
    cancel = client.post(
        f"/api/enterprise/video-batch/{created['batch_id']}/cancel",
        headers={"x-api-key": account.api_key},
    )
    assert cancel.status_code == 200
    assert counts(client, account.api_key, created["batch_id"]) == (
        "processing",
        {"processing": 3, "cancelled": 1},
    )
    assert api.claim(max_tasks=10) == []
    assert api.heartbeat(running[0]).get_json()["cancel_requested"] is True
    # a retryable failure of a cancelled batch's task is not retried: cancelled, refunded
    body = api.fail(running[0], retryable=True).get_json()
    assert (body["status"], body["refunded"]) == ("cancelled", True)
    # a completed report still completes
    assert api.complete(running[1]).get_json()["status"] == "completed"
    # a lost lease in a cancelled batch ends cancelled too
    with app.extensions["videobatch.db"].transaction() as session:
        report = tasks.reap_expired_leases(session, now=datetime.now(UTC) + timedelta(hours=1))
    assert report.cancelled == 1
    assert counts(client, account.api_key, created["batch_id"]) == (
        "cancelled",
        {"completed": 1, "cancelled": 3},
    )
    assert len(refunds(app, account.account_id)) == 3
    assert assert_money_balanced(app, account.account_id)["balance"] == 1000 - 10
    assert replay_status(client, account.api_key, created) == "cancelled"


def test_task_of_a_cancel_requested_batch_is_never_claimed(app, client, api, fast_retries):
    account = make_account(app)
    created = create_batch(client, account.api_key, count=1)
    with app.extensions["videobatch.db"].transaction() as session:
        session.execute(
            update(BatchJob)
            .where(BatchJob.id == uuid.UUID(created["batch_id"]))
            .values(cancel_requested_at=datetime.now(UTC))
        )
    assert api.claim(max_tasks=10) == []
    assert task_row(app, _task_ids(app, created)[0]).status == "queued"


def test_run_once_runs_the_provider_and_reports(app, client, api):
    account = make_account(app)
    created = create_batch(client, account.api_key, count=3)
    response = api.post("/worker/run-once", {"max_tasks": 2})
    assert response.status_code == 200
    body = response.get_json()
    assert (body["provider"], body["claimed"], body["completed"]) == ("simulated", 2, 2)
    for task in body["tasks"]:
        assert (
            task["video_url"]
            == f"https://videos.videobatch.invalid/simulated/{task['task_id']}.mp4"
        )
    assert counts(client, account.api_key, created["batch_id"]) == (
        "processing",
        {"completed": 2, "queued": 1},
    )
    assert api.post("/worker/run-once", {}).get_json()["completed"] == 1
    assert counts(client, account.api_key, created["batch_id"])[0] == "completed"
    assert api.post("/worker/run-once").get_json()["claimed"] == 0


def test_run_once_with_failing_provider_retries_then_refunds(app, client, api, fast_retries):
    config = app.extensions["videobatch.config"]
    app.extensions["videobatch.config"] = config.replace(simulated_failure_rate=1.0)
    account = make_account(app)
    created = create_batch(client, account.api_key, count=2)
    outcomes = []
    deadline = time.monotonic() + 10
    while counts(client, account.api_key, created["batch_id"])[0] == "processing" or not outcomes:
        assert time.monotonic() < deadline
        outcomes += [t["outcome"] for t in api.post("/worker/run-once").get_json()["tasks"]]
        time.sleep(0.03)
    assert sorted(outcomes) == ["failed", "failed", "requeued", "requeued", "requeued", "requeued"]
    assert counts(client, account.api_key, created["batch_id"]) == ("failed", {"failed": 2})
    assert len(refunds(app, account.account_id)) == 2
    assert assert_money_balanced(app, account.account_id)["balance"] == 1000


def _claim_when_ready(api: InternalApi, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        claimed = api.claim()
        if claimed:
            return claimed[0]
        time.sleep(0.01)
    raise AssertionError("no task became ready")


def _task_ids(app, created) -> list:
    from sqlalchemy import select

    from videobatch.models import VideoTask

    with app.extensions["videobatch.db"].transaction() as session:
        return list(
            session.execute(
                select(VideoTask.id)
                .where(VideoTask.batch_id == uuid.UUID(created["batch_id"]))
                .order_by(VideoTask.position)
            ).scalars()
        )
