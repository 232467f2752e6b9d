"""POST /api/enterprise/video-batch/<id>/cancel on both tiers: SPEC 4.6."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, update

from tests.conftest import TEST_SECRET
from tests.factories import batch_body, ledger_state, make_account
from videobatch.models import BatchJob, LedgerEntry, VideoTask

URL = "/api/enterprise/video-batch"


def create(client, key, request_id="r1", count=3):
    response = client.post(
        URL, json=batch_body(count), headers={"x-api-key": key, "x-request-id": request_id}
    )
    assert response.status_code == 201
    return response.get_json()["batch_id"]


def cancel(client, key, batch_id):
    return client.post(f"{URL}/{batch_id}/cancel", headers={"x-api-key": key})


def refunds(app, batch_id: str) -> int:
    with app.extensions["videobatch.db"].transaction() as session:
        return session.execute(
            select(func.count())
            .select_from(LedgerEntry)
            .where(LedgerEntry.batch_id == uuid.UUID(batch_id), LedgerEntry.kind == "refund")
        ).scalar_one()


def set_task_status(app, batch_id: str, position: int, **values) -> None:
    with app.extensions["videobatch.db"].transaction() as session:
        session.execute(
            update(VideoTask)
            .where(VideoTask.batch_id == uuid.UUID(batch_id), VideoTask.position == position)
            .values(**values)
        )


def test_cancel_cancels_and_refunds_every_queued_task(app, client):
    account = make_account(app, credits=1000)
    batch_id = create(client, account.api_key, count=3)
    answer = cancel(client, account.api_key, batch_id)
    assert answer.status_code == 200
    batch = answer.get_json()
    assert batch["status"] == "cancelled"
    assert batch["counts"]["cancelled"] == 3
    assert batch["finished_at"] is not None
    assert batch["cancel_requested_at"] is not None
    assert batch["available_credits"] == 1000
    assert {task["status"] for task in batch["tasks"]} == {"cancelled"}
    assert refunds(app, batch_id) == 3
    state = ledger_state(app, account.account_id)
    assert state["balance"] == state["ledger_sum"] == 1000


def test_cancel_again_changes_nothing(app, client):
    account = make_account(app, credits=1000)
    batch_id = create(client, account.api_key, count=3)
    first = cancel(client, account.api_key, batch_id).get_json()
    for _ in range(3):
        again = cancel(client, account.api_key, batch_id)
        assert again.status_code == 200
        assert again.get_json() == first
    assert refunds(app, batch_id) == 3
    assert ledger_state(app, account.account_id)["balance"] == 1000


def test_cancel_lets_running_tasks_finish(app, client):
    account = make_account(app, credits=1000)
    batch_id = create(client, account.api_key, count=3)
    set_task_status(app, batch_id, 0, status="processing", attempts=1)
    with app.extensions["videobatch.db"].transaction() as session:
        session.execute(
            update(BatchJob).where(BatchJob.id == uuid.UUID(batch_id)).values(status="processing")
        )
    batch = cancel(client, account.api_key, batch_id).get_json()
    assert batch["status"] == "processing"
    assert batch["counts"]["processing"] == 1
    assert batch["counts"]["cancelled"] == 2
    assert batch["cancel_requested_at"] is not None
    assert batch["finished_at"] is None
    assert refunds(app, batch_id) == 2
    assert ledger_state(app, account.account_id)["balance"] == 1000 - 10


def test_cancelling_an_ended_batch_returns_it_unchanged(app, client):
    account = make_account(app, credits=1000)
    batch_id = create(client, account.api_key, count=1)
    set_task_status(app, batch_id, 0, status="completed", video_url="https://v/1.mp4")
    with app.extensions["videobatch.db"].transaction() as session:
        session.execute(
            update(BatchJob).where(BatchJob.id == uuid.UUID(batch_id)).values(status="completed")
        )
    before = client.get(f"{URL}/{batch_id}", headers={"x-api-key": account.api_key}).get_json()
    answer = cancel(client, account.api_key, batch_id)
    assert answer.status_code == 200
    assert answer.get_json() == before
    assert answer.get_json()["cancel_requested_at"] is None
    assert refunds(app, batch_id) == 0


def test_cancel_of_another_accounts_batch_is_404_and_changes_nothing(app, client):
    owner = make_account(app, name="owner")
    other = make_account(app, name="other")
    batch_id = create(client, owner.api_key)
    for target in (batch_id, str(uuid.uuid4()), "not-a-uuid"):
        answer = cancel(client, other.api_key, target)
        assert answer.status_code == 404
        assert answer.get_json()["code"] == "not_found"
    assert refunds(app, batch_id) == 0
    batch = client.get(f"{URL}/{batch_id}", headers={"x-api-key": owner.api_key}).get_json()
    assert batch["status"] == "queued"


def worker_call(client, path, body):
    response = client.post(
        f"/api/internal{path}", json=body, headers={"x-internal-secret": TEST_SECRET}
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_running_task_learns_of_the_cancel_and_the_batch_ends_cancelled(app, client):
    account = make_account(app, credits=1000)
    batch_id = create(client, account.api_key, count=3)
    (task,) = worker_call(client, "/tasks/claim", {"worker_id": "w1", "max_tasks": 1})["tasks"]
    beat = {"lease_token": task["lease_token"], "lease_seconds": 60}
    path = f"/tasks/{task['task_id']}"
    assert worker_call(client, f"{path}/heartbeat", beat)["cancel_requested"] is False

    batch = cancel(client, account.api_key, batch_id).get_json()
    assert (batch["counts"]["processing"], batch["counts"]["cancelled"]) == (1, 2)
    assert worker_call(client, f"{path}/heartbeat", beat)["cancel_requested"] is True
    assert worker_call(client, "/tasks/claim", {"max_tasks": 10})["tasks"] == []

    worker_call(
        client,
        f"{path}/complete",
        {"lease_token": task["lease_token"], "video_url": "https://v.example/1.mp4"},
    )
    ended = client.get(f"{URL}/{batch_id}", headers={"x-api-key": account.api_key}).get_json()
    assert ended["status"] == "cancelled"
    assert ended["finished_at"] is not None
    assert refunds(app, batch_id) == 2
    state = ledger_state(app, account.account_id)
    assert state["balance"] == state["ledger_sum"] == 1000 - 10
