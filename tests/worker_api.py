"""Helpers for tests of the internal worker API: calls, batches with tasks, and row reads."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Flask
from sqlalchemy import select

from tests.conftest import TEST_SECRET
from tests.factories import batch_body, ledger_state
from videobatch.models import BatchJob, LedgerEntry, VideoTask

SECRET_HEADERS = {"x-internal-secret": TEST_SECRET}


class InternalApi:
    """The internal API through a Flask test client, with the worker secret."""

    def __init__(self, client) -> None:
        self.client = client

    def post(self, path: str, body: Any = None, **kwargs):
        return self.client.post(
            f"/api/internal{path}",
            json=body if body is not None else {},
            headers=SECRET_HEADERS,
            **kwargs,
        )

    def claim(self, max_tasks: int = 1, lease_seconds: int = 60, worker_id: str = "w1") -> list:
        response = self.post(
            "/tasks/claim",
            {"worker_id": worker_id, "max_tasks": max_tasks, "lease_seconds": lease_seconds},
        )
        assert response.status_code == 200, response.get_json()
        return response.get_json()["tasks"]

    def complete(self, task: dict, video_url: str | None = None, token: str | None = None):
        return self.post(
            f"/tasks/{task['task_id']}/complete",
            {
                "lease_token": token or task["lease_token"],
                "video_url": video_url or f"https://cdn.example.com/{task['task_id']}.mp4",
            },
        )

    def fail(self, task: dict, *, retryable: bool = True, code: str = "gpu_oom", token=None):
        return self.post(
            f"/tasks/{task['task_id']}/fail",
            {
                "lease_token": token or task["lease_token"],
                "error_code": code,
                "error_message": "out of memory",
                "retryable": retryable,
            },
        )

    def heartbeat(self, task: dict, lease_seconds: int = 60, token: str | None = None):
        return self.post(
            f"/tasks/{task['task_id']}/heartbeat",
            {"lease_token": token or task["lease_token"], "lease_seconds": lease_seconds},
        )


def create_batch(client, api_key: str, count: int = 2, request_id: str | None = None) -> dict:
    """A new batch through the public API; its create answer."""
    response = client.post(
        "/api/enterprise/video-batch",
        json=batch_body(count),
        headers={"x-api-key": api_key, "x-request-id": request_id or f"req-{uuid.uuid4()}"},
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def batch_detail(client, api_key: str, batch_id: str) -> dict:
    response = client.get(f"/api/enterprise/video-batch/{batch_id}", headers={"x-api-key": api_key})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def task_row(app: Flask, task_id: str | uuid.UUID) -> VideoTask:
    with app.extensions["videobatch.db"].transaction() as session:
        return session.execute(
            select(VideoTask).where(VideoTask.id == uuid.UUID(str(task_id)))
        ).scalar_one()


def batch_row(app: Flask, batch_id: str | uuid.UUID) -> BatchJob:
    with app.extensions["videobatch.db"].transaction() as session:
        return session.execute(
            select(BatchJob).where(BatchJob.id == uuid.UUID(str(batch_id)))
        ).scalar_one()


def refunds(app: Flask, account_id: uuid.UUID) -> list[LedgerEntry]:
    with app.extensions["videobatch.db"].transaction() as session:
        return list(
            session.execute(
                select(LedgerEntry).where(
                    LedgerEntry.account_id == account_id, LedgerEntry.kind == "refund"
                )
            ).scalars()
        )


def assert_money_balanced(app: Flask, account_id: uuid.UUID) -> dict[str, int]:
    """balance == sum(ledger), the invariant every scenario ends on; returns the state."""
    state = ledger_state(app, account_id)
    assert state["balance"] == state["ledger_sum"], state
    return state
