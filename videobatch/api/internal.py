"""The internal worker API under /api/internal, for workers holding INTERNAL_WORKER_SECRET."""

from __future__ import annotations

import os
import socket
import uuid

from flask import Blueprint, current_app, request

from videobatch.api.common import load_json
from videobatch.auth import bearer_or_header, check_worker_secret
from videobatch.extensions import get_config, get_db
from videobatch.schemas.worker import (
    ClaimRequestSchema,
    ClaimResponseSchema,
    CompleteRequestSchema,
    FailRequestSchema,
    HeartbeatRequestSchema,
    HeartbeatResponseSchema,
    RunOnceRequestSchema,
    RunOnceResponseSchema,
    TaskOutcomeSchema,
)
from videobatch.services import tasks
from videobatch.worker.clients import LocalTaskClient, ReapSchedule
from videobatch.worker.providers import load_provider
from videobatch.worker.runner import RUN_ONCE_OUTCOMES
from videobatch.worker.runner import run_once as run_tasks

bp = Blueprint("internal", __name__, url_prefix="/api/internal")


@bp.before_request
def authenticate_worker() -> None:
    """Every internal endpoint needs the worker secret; with none configured the API is off."""
    check_worker_secret(
        bearer_or_header(request, "x-internal-secret"), get_config().internal_worker_secret
    )


def reaper() -> ReapSchedule:
    """This process's reaper schedule (one per app)."""
    return current_app.extensions.setdefault("videobatch.reaper", ReapSchedule())


def retry_policy() -> tasks.RetryPolicy:
    config = get_config()
    return tasks.RetryPolicy(config.retry_base_delay_s, config.retry_max_delay_s)


@bp.post("/tasks/claim")
def claim() -> dict:
    """Lease up to max_tasks ready tasks to the calling worker (ready first, oldest first)."""
    payload = load_json(ClaimRequestSchema(), allow_empty=True)
    reaper().reap_if_due(get_db())
    with get_db().transaction() as session:
        claimed = tasks.claim_tasks(session, **payload)
    return ClaimResponseSchema().dump({"tasks": claimed})


@bp.post("/tasks/<uuid:task_id>/heartbeat")
def heartbeat(task_id: uuid.UUID) -> dict:
    """Extend a lease the worker still holds; tells whether the batch was cancelled."""
    payload = load_json(HeartbeatRequestSchema())
    with get_db().transaction() as session:
        renewal = tasks.renew_lease(
            session,
            task_id,
            payload["lease_token"],
            lease_seconds=payload["lease_seconds"],
        )
    return HeartbeatResponseSchema().dump(renewal)


@bp.post("/tasks/<uuid:task_id>/complete")
def complete(task_id: uuid.UUID) -> dict:
    """Report a task done with its video URL; the same report again is a replay."""
    payload = load_json(CompleteRequestSchema())
    with get_db().transaction() as session:
        outcome = tasks.complete_task(
            session, task_id, payload["lease_token"], video_url=payload["video_url"]
        )
    return TaskOutcomeSchema().dump(outcome)


@bp.post("/tasks/<uuid:task_id>/fail")
def fail(task_id: uuid.UUID) -> dict:
    """Report a failed attempt: requeued with backoff, or ended failed and refunded."""
    payload = load_json(FailRequestSchema())
    with get_db().transaction() as session:
        outcome = tasks.fail_task(
            session,
            task_id,
            payload.pop("lease_token"),
            policy=retry_policy(),
            **payload,
        )
    return TaskOutcomeSchema().dump(outcome)


@bp.post("/worker/run-once")
def run_once() -> dict:
    """Run the configured provider here on up to max_tasks ready tasks; report what happened."""
    payload = load_json(RunOnceRequestSchema(), allow_empty=True)
    config = get_config()
    provider = load_provider(config)
    client = LocalTaskClient(
        get_db(),
        config,
        worker_id=f"run-once@{socket.gethostname()}:{os.getpid()}",
        reaper=reaper(),
    )
    results = run_tasks(client, provider, max_tasks=payload["max_tasks"])
    counts = dict.fromkeys(RUN_ONCE_OUTCOMES, 0)
    for result in results:
        if result.outcome in counts:
            counts[result.outcome] += 1
    return RunOnceResponseSchema().dump(
        {
            "provider": provider.name,
            "claimed": len(results),
            **counts,
            "tasks": [
                {
                    "task_id": result.lease.task.task_id,
                    "batch_id": result.lease.task.batch_id,
                    "attempt": result.lease.task.attempt,
                    "outcome": result.outcome,
                    "status": result.status,
                    "video_url": result.video_url,
                    "error_code": result.error_code,
                }
                for result in results
            ],
        }
    )
