"""Workers as real processes against gunicorn on PostgreSQL + Redis (SPEC 9.4, 9.5).

Claimers in separate processes share 1,200 tasks through the HTTP API; `videobatch worker`
processes are killed with SIGKILL and stopped with SIGTERM mid-task; the same failure is reported
ten times at once. Each scenario ends on the money invariant and the batch's final status.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from tests.conftest import TEST_SECRET, server_env, start_gunicorn, stop_process
from tests.factories import batch_body, make_account
from tests.worker_api import assert_money_balanced, batch_row, refunds, task_row
from videobatch.models import VideoTask

pytestmark = pytest.mark.services

VIDEOBATCH = str(Path(sys.executable).parent / "videobatch")
HEADERS = {"x-internal-secret": TEST_SECRET}


@pytest.fixture(scope="module")
def server(postgres_url, redis_url):
    """gunicorn (3 processes) with fast retries, shared by this module's tests."""
    url, process = start_gunicorn(
        server_env(postgres_url, redis_url, RETRY_BASE_DELAY_S="0.05"), workers=3, threads=8
    )
    yield url
    stop_process(process)


def create(url: str, api_key: str, count: int) -> dict:
    response = requests.post(
        f"{url}/api/enterprise/video-batch",
        json=batch_body(count),
        headers={"x-api-key": api_key, "x-request-id": f"req-{uuid.uuid4()}"},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    return response.json()


def status_counts(app, batch_id) -> Counter:
    with app.extensions["videobatch.db"].transaction() as session:
        rows = session.execute(
            select(VideoTask.status, func.count())
            .where(VideoTask.batch_id == uuid.UUID(batch_id))
            .group_by(VideoTask.status)
        ).all()
    return Counter(dict(rows))


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def start_worker(url: str, log_path: Path, *args: str, **env: str) -> subprocess.Popen:
    """`videobatch worker` in production mode: no database settings, only the API and secret."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VIDEOBATCH_", "DATABASE_URL", "REDIS_URL", "SIMULATED_"))
    }
    environ.update(
        VIDEOBATCH_ENV="production",
        WORKER_API_URL=url,
        INTERNAL_WORKER_SECRET=TEST_SECRET,
        SIMULATED_DELAY_MS="0",
    )
    environ.update(env)
    log = log_path.open("w")
    process = subprocess.Popen(
        [VIDEOBATCH, "worker", "--poll-interval", "0.1", *args],
        env=environ,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    return process


# -- many claimers ------------------------------------------------------------------------------


def _claimer(url: str, name: str, results) -> None:
    """Claim and complete until the queue stays empty; record every (task_id, attempt) claimed."""
    session = requests.Session()
    session.headers.update(HEADERS)
    seen = []
    empty = 0
    while empty < 3:
        answer = session.post(
            f"{url}/api/internal/tasks/claim",
            json={"worker_id": name, "max_tasks": 20, "lease_seconds": 60},
            timeout=30,
        )
        answer.raise_for_status()
        claimed = answer.json()["tasks"]
        empty = 0 if claimed else empty + 1
        for task in claimed:
            seen.append((task["task_id"], task["attempt"]))
            done = session.post(
                f"{url}/api/internal/tasks/{task['task_id']}/complete",
                json={"lease_token": task["lease_token"], "video_url": f"https://v.example/{name}"},
                timeout=30,
            )
            assert done.status_code == 200, done.text
        if not claimed:
            time.sleep(0.1)
    results.put((name, seen))


def test_four_claimer_processes_share_1200_tasks_each_claimed_exactly_once(server, pg_app):
    account = make_account(pg_app, credits=100_000)
    batches = [create(server, account.api_key, 600) for _ in range(2)]
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    claimers = [
        context.Process(target=_claimer, args=(server, f"claimer-{i}", results)) for i in range(4)
    ]
    for process in claimers:
        process.start()
    collected = dict(results.get(timeout=240) for _ in claimers)
    for process in claimers:
        process.join(timeout=30)
        assert process.exitcode == 0
    claims = [claim for seen in collected.values() for claim in seen]
    assert len(claims) == 1200
    assert len({task_id for task_id, _ in claims}) == 1200  # no task handed out twice
    assert {attempt for _, attempt in claims} == {1}
    assert all(len(seen) > 0 for seen in collected.values()), "every process claimed some"
    for batch in batches:
        assert status_counts(pg_app, batch["batch_id"]) == Counter(completed=600)
        assert batch_row(pg_app, batch["batch_id"]).status == "completed"
    state = assert_money_balanced(pg_app, account.account_id)
    assert state["balance"] == 100_000 - 12_000


def test_four_worker_processes_complete_1000_tasks_and_stop_cleanly(server, pg_app, tmp_path):
    account = make_account(pg_app, credits=100_000)
    batch = create(server, account.api_key, 1000)
    logs = [tmp_path / f"worker-{i}.log" for i in range(4)]
    workers = [
        start_worker(server, log, "--concurrency", "4", "--worker-id", f"w{i}")
        for i, log in enumerate(logs)
    ]
    try:
        wait_until(
            lambda: batch_row(pg_app, batch["batch_id"]).status == "completed", 120, "the batch"
        )
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        codes = [worker.wait(timeout=60) for worker in workers]
    assert codes == [0, 0, 0, 0]
    completed = Counter()
    for log in logs:
        completed.update(
            re.findall(r"task (\S+) \(batch \S+\) attempt \d+/\d+: completed", log.read_text())
        )
    assert len(completed) == 1000 and set(completed.values()) == {1}
    assert sum(1 for log in logs if "completed" in log.read_text()) >= 2, "work was shared"
    assert status_counts(pg_app, batch["batch_id"]) == Counter(completed=1000)
    assert assert_money_balanced(pg_app, account.account_id)["balance"] == 90_000


# -- crashes and shutdowns ----------------------------------------------------------------------


def test_worker_killed_mid_task_loses_nothing_and_its_late_report_is_refused(
    server, pg_app, tmp_path
):
    account = make_account(pg_app)
    batch = create(server, account.api_key, 1)
    # A slow provider keeps the task in hand; heartbeats keep its 2 s lease alive meanwhile.
    doomed = start_worker(
        server, tmp_path / "doomed.log", "--lease-seconds", "2", "--worker-id", "doomed",
        SIMULATED_DELAY_MS="60000",
    )  # fmt: skip
    try:
        wait_until(
            lambda: status_counts(pg_app, batch["batch_id"])["processing"] == 1, 30, "the claim"
        )
        task_id = _only_task(pg_app, batch["batch_id"])
        time.sleep(2.5)  # longer than the lease: the heartbeats must be holding it
        held = task_row(pg_app, task_id)
        assert (held.status, held.leased_by, held.attempts) == ("processing", "doomed", 1)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
    finally:
        if doomed.poll() is None:
            doomed.kill()
    assert batch_row(pg_app, batch["batch_id"]).status == "processing"
    rescuer = start_worker(server, tmp_path / "rescuer.log", "--worker-id", "rescuer")
    try:
        wait_until(lambda: task_row(pg_app, task_id).status == "completed", 30, "the rescue")
    finally:
        rescuer.send_signal(signal.SIGTERM)
        assert rescuer.wait(timeout=30) == 0
    done = task_row(pg_app, task_id)
    assert (done.leased_by, done.attempts) == ("rescuer", 2)
    late = requests.post(
        f"{server}/api/internal/tasks/{task_id}/complete",
        json={"lease_token": held.lease_token, "video_url": "https://late.example/v.mp4"},
        headers=HEADERS,
        timeout=10,
    )
    assert late.status_code == 409 and late.json()["code"] == "lease_lost"
    after = task_row(pg_app, task_id)
    assert (after.status, after.video_url, after.attempts) == (
        "completed",
        done.video_url,
        2,
    )
    assert batch_row(pg_app, batch["batch_id"]).status == "completed"
    assert refunds(pg_app, account.account_id) == []
    assert assert_money_balanced(pg_app, account.account_id)["balance"] == 990


def test_sigterm_drains_running_tasks_and_claims_nothing_more(server, pg_app, tmp_path):
    account = make_account(pg_app)
    batch = create(server, account.api_key, 8)
    worker = start_worker(
        server, tmp_path / "w.log", "--concurrency", "4", SIMULATED_DELAY_MS="1500"
    )
    wait_until(lambda: status_counts(pg_app, batch["batch_id"])["processing"] == 4, 30, "claims")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    assert status_counts(pg_app, batch["batch_id"]) == Counter(completed=4, queued=4)
    _finish_with_a_second_worker(server, pg_app, tmp_path, batch)
    attempts = _attempts(pg_app, batch["batch_id"])
    assert attempts == [1] * 8, "nothing ran twice"
    assert "draining 4 running task(s)" in (tmp_path / "w.log").read_text()


def test_sigterm_past_the_drain_timeout_releases_tasks_for_others(server, pg_app, tmp_path):
    account = make_account(pg_app)
    batch = create(server, account.api_key, 3)
    worker = start_worker(
        server, tmp_path / "w.log", "--concurrency", "3", "--drain-timeout", "0.2",
        SIMULATED_DELAY_MS="60000",
    )  # fmt: skip
    wait_until(lambda: status_counts(pg_app, batch["batch_id"])["processing"] == 3, 30, "claims")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    assert status_counts(pg_app, batch["batch_id"]) == Counter(queued=3)
    for task_id in _task_ids(pg_app, batch["batch_id"]):
        assert task_row(pg_app, task_id).error_code == "worker_shutdown"
    _finish_with_a_second_worker(server, pg_app, tmp_path, batch)
    assert _attempts(pg_app, batch["batch_id"]) == [2, 2, 2]
    assert assert_money_balanced(pg_app, account.account_id)["balance"] == 970


def test_failing_provider_exhausts_retries_and_refunds_each_task_once(server, pg_app, tmp_path):
    account = make_account(pg_app)
    batch = create(server, account.api_key, 5)
    worker = start_worker(
        server, tmp_path / "w.log", "--concurrency", "5", SIMULATED_FAILURE_RATE="1"
    )
    try:
        wait_until(lambda: batch_row(pg_app, batch["batch_id"]).status == "failed", 60, "failure")
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    assert _attempts(pg_app, batch["batch_id"]) == [3] * 5
    assert len(refunds(pg_app, account.account_id)) == 5
    assert assert_money_balanced(pg_app, account.account_id)["balance"] == 1000


# -- concurrent reports -------------------------------------------------------------------------


@pytest.mark.parametrize("retryable", [False, True])
def test_same_fail_reported_ten_times_at_once_refunds_once(server, pg_app, retryable):
    account = make_account(pg_app)
    batch = create(server, account.api_key, 2)
    claim = requests.post(
        f"{server}/api/internal/tasks/claim",
        json={"max_tasks": 1, "lease_seconds": 60},
        headers=HEADERS,
        timeout=10,
    ).json()["tasks"][0]
    if retryable:  # the last attempt: a retryable failure is exhausted
        with pg_app.extensions["videobatch.db"].transaction() as session:
            row = session.get(VideoTask, uuid.UUID(claim["task_id"]))
            row.attempts = row.max_attempts

    def report(_: int) -> requests.Response:
        return requests.post(
            f"{server}/api/internal/tasks/{claim['task_id']}/fail",
            json={
                "lease_token": claim["lease_token"],
                "error_code": "gpu_oom",
                "error_message": "out of memory",
                "retryable": retryable,
            },
            headers=HEADERS,
            timeout=30,
        )

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(report, range(10)))
    assert [answer.status_code for answer in answers] == [200] * 10
    assert sorted(answer.json()["replay"] for answer in answers) == [False] + [True] * 9
    assert sum(answer.json()["refunded"] for answer in answers) == 1
    assert {answer.json()["status"] for answer in answers} == {"failed"}
    assert len(refunds(pg_app, account.account_id)) == 1
    assert assert_money_balanced(pg_app, account.account_id)["balance"] == 990
    assert status_counts(pg_app, batch["batch_id"]) == Counter(failed=1, queued=1)
    assert batch_row(pg_app, batch["batch_id"]).status == "processing"


def test_same_complete_reported_ten_times_at_once_completes_once(server, pg_app):
    account = make_account(pg_app)
    batch = create(server, account.api_key, 1)
    claim = requests.post(
        f"{server}/api/internal/tasks/claim", json={}, headers=HEADERS, timeout=10
    ).json()["tasks"][0]

    def report(i: int) -> requests.Response:
        return requests.post(
            f"{server}/api/internal/tasks/{claim['task_id']}/complete",
            json={"lease_token": claim["lease_token"], "video_url": f"https://v.example/{i}"},
            headers=HEADERS,
            timeout=30,
        )

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(report, range(10)))
    assert [answer.status_code for answer in answers] == [200] * 10
    assert sorted(answer.json()["replay"] for answer in answers) == [False] + [True] * 9
    assert len({answer.json()["video_url"] for answer in answers}) == 1
    assert batch_row(pg_app, batch["batch_id"]).status == "completed"
    assert assert_money_balanced(pg_app, account.account_id)["balance"] == 990


# -- helpers ------------------------------------------------------------------------------------


def _task_ids(app, batch_id: str) -> list[uuid.UUID]:
    with app.extensions["videobatch.db"].transaction() as session:
        return list(
            session.execute(
                select(VideoTask.id)
                .where(VideoTask.batch_id == uuid.UUID(batch_id))
                .order_by(VideoTask.position)
            ).scalars()
        )


def _only_task(app, batch_id: str) -> uuid.UUID:
    (task_id,) = _task_ids(app, batch_id)
    return task_id


def _attempts(app, batch_id: str) -> list[int]:
    return [task_row(app, task_id).attempts for task_id in _task_ids(app, batch_id)]


def _finish_with_a_second_worker(server, app, tmp_path, batch) -> None:
    log = Path(tempfile.mkstemp(dir=tmp_path, suffix=".log")[1])
    finisher = start_worker(server, log, "--concurrency", "4")
    try:
        wait_until(lambda: batch_row(app, batch["batch_id"]).status == "completed", 60, "the batch")
    finally:
        finisher.send_signal(signal.SIGTERM)
        assert finisher.wait(timeout=30) == 0
