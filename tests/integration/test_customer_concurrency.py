"""Listing and cancelling while other work runs, on the real PostgreSQL and Redis."""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import pytest
from sqlalchemy import select

from tests.factories import batch_body, ledger_state, make_account
from videobatch.models import LedgerEntry, VideoTask
from videobatch.services import cancellation, tasks

pytestmark = pytest.mark.services

URL = "/api/enterprise/video-batch"


def create(client, key, request_id, count=1):
    response = client.post(
        URL, json=batch_body(count), headers={"x-api-key": key, "x-request-id": request_id}
    )
    assert response.status_code == 201
    return response.get_json()["batch_id"]


def test_paging_visits_every_batch_once_while_batches_are_created(pg_app):
    client = pg_app.test_client()
    account = make_account(pg_app, credits=100_000)
    existing = {create(client, account.api_key, f"old-{i}") for i in range(45)}
    stop = threading.Event()
    inserted: list[str] = []

    def insert_batches() -> None:
        inserter = pg_app.test_client()
        while not stop.is_set() and len(inserted) < 200:
            inserted.append(create(inserter, account.api_key, f"new-{uuid.uuid4()}"))

    writer = threading.Thread(target=insert_batches)
    writer.start()
    seen: list[str] = []
    try:
        params: dict[str, object] = {"limit": 4}
        while True:
            page = client.get(URL, query_string=params, headers={"x-api-key": account.api_key})
            assert page.status_code == 200
            body = page.get_json()
            seen.extend(batch["batch_id"] for batch in body["data"])
            if not body["has_more"]:
                break
            params["starting_after"] = body["data"][-1]["batch_id"]
    finally:
        stop.set()
        writer.join()
    assert inserted, "no batch was created while paging"
    duplicates = [batch_id for batch_id, count in Counter(seen).items() if count > 1]
    assert duplicates == []
    assert existing <= set(seen)
    assert set(seen) <= existing | set(inserted)


def test_cancel_racing_claims_refunds_each_queued_task_exactly_once(pg_app):
    client = pg_app.test_client()
    account = make_account(pg_app, credits=10_000)
    batch_id = uuid.UUID(create(client, account.api_key, "race", count=120))
    database = pg_app.extensions["videobatch.db"]
    claimed: list[uuid.UUID] = []
    claimed_lock = threading.Lock()
    start = threading.Barrier(7)
    first_claim = threading.Event()
    failures: list[BaseException] = []

    def claimer(worker: int) -> None:
        start.wait()
        try:
            for _ in range(15):
                with database.transaction() as session:
                    got = tasks.claim_tasks(
                        session, worker_id=f"w{worker}", max_tasks=3, lease_seconds=300
                    )
                with claimed_lock:
                    claimed.extend(task.task_id for task in got)
                first_claim.set()
        except BaseException as error:
            failures.append(error)

    def canceller() -> None:
        start.wait()
        first_claim.wait(timeout=10)  # cancel while claims are under way, not before
        try:
            for _ in range(5):
                with database.transaction() as session:
                    cancellation.cancel_batch(session, account.account_id, batch_id)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(4)]
    threads += [threading.Thread(target=canceller) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []

    with database.transaction() as session:
        statuses = dict(
            session.execute(
                select(VideoTask.id, VideoTask.status).where(VideoTask.batch_id == batch_id)
            ).all()
        )
        refunded = list(
            session.execute(
                select(LedgerEntry.task_id).where(
                    LedgerEntry.batch_id == batch_id, LedgerEntry.kind == "refund"
                )
            ).scalars()
        )
    cancelled = {task_id for task_id, status in statuses.items() if status == "cancelled"}
    assert claimed and cancelled, "the claims and the cancels did not overlap"
    assert len(claimed) == len(set(claimed))
    assert set(claimed).isdisjoint(cancelled)
    assert {statuses[task_id] for task_id in claimed} <= {"processing"}
    assert set(claimed) | cancelled == set(statuses)
    assert sorted(refunded) == sorted(cancelled)
    state = ledger_state(pg_app, account.account_id)
    assert state["balance"] == state["ledger_sum"] == 10_000 - 10 * len(claimed)
