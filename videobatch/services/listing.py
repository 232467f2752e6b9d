"""Reading batches back for their owner: one batch with its tasks, and newest-first pages."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from videobatch.errors import NotFound
from videobatch.models import BatchJob, TaskStatus, VideoTask
from videobatch.services import ledger
from videobatch.services.paging import newest_first

TASK_COLUMNS = (
    VideoTask.id,
    VideoTask.position,
    VideoTask.prompt,
    VideoTask.params,
    VideoTask.status,
    VideoTask.attempts,
    VideoTask.video_url,
    VideoTask.error_code,
    VideoTask.error_message,
    VideoTask.started_at,
    VideoTask.finished_at,
)


@dataclass(frozen=True)
class TaskError:
    code: str | None
    message: str | None


@dataclass(frozen=True)
class TaskView:
    task_id: uuid.UUID
    position: int
    prompt: str
    client_ref: str | None
    status: str
    attempts: int
    video_url: str | None
    error: TaskError | None
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, task: Any) -> TaskView:
        """From a ``VideoTask`` or a row of ``TASK_COLUMNS``."""
        failed = task.error_code is not None or task.error_message is not None
        return cls(
            task_id=task.id,
            position=task.position,
            prompt=task.prompt,
            client_ref=(task.params or {}).get("client_ref"),
            status=task.status,
            attempts=task.attempts,
            video_url=task.video_url,
            error=TaskError(task.error_code, task.error_message) if failed else None,
            started_at=task.started_at,
            finished_at=task.finished_at,
        )


@dataclass(frozen=True)
class BatchView:
    """A batch as its owner reads it: the create fields, counts, and (for one batch) its tasks."""

    batch_id: uuid.UUID
    request_id: str
    status: str
    total_count: int
    cost_per_video: int
    required_credits: int
    available_credits: int
    created_at: datetime
    finished_at: datetime | None
    cancel_requested_at: datetime | None
    metadata: dict[str, Any]
    counts: dict[str, int]
    tasks: list[TaskView]


@dataclass(frozen=True)
class BatchPage:
    data: list[BatchView]
    has_more: bool


def _empty_counts() -> dict[str, int]:
    return {status.value: 0 for status in TaskStatus}


def _view(
    batch: BatchJob, balance: int, counts: dict[str, int], tasks: list[TaskView]
) -> BatchView:
    return BatchView(
        batch_id=batch.id,
        request_id=batch.request_id,
        status=batch.status,
        total_count=batch.total_count,
        cost_per_video=batch.cost_per_video,
        required_credits=batch.required_credits,
        available_credits=balance,
        created_at=batch.created_at,
        finished_at=batch.finished_at,
        cancel_requested_at=batch.cancel_requested_at,
        metadata=batch.metadata_ or {},
        counts=counts,
        tasks=tasks,
    )


def _counts_by_batch(session: Session, batch_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict]:
    counts: dict[uuid.UUID, dict[str, int]] = defaultdict(_empty_counts)
    if not batch_ids:
        return counts
    rows = session.execute(
        select(VideoTask.batch_id, VideoTask.status, func.count())
        .where(VideoTask.batch_id.in_(batch_ids))
        .group_by(VideoTask.batch_id, VideoTask.status)
    ).all()
    for batch_id, status, count in rows:
        counts[batch_id][status] = count
    return counts


def get_batch(session: Session, account_id: uuid.UUID, batch_id: uuid.UUID) -> BatchView:
    """One of the account's batches with its counts and tasks; another account's is NotFound."""
    batch = session.execute(
        select(BatchJob).where(BatchJob.id == batch_id, BatchJob.account_id == account_id)
    ).scalar_one_or_none()
    if batch is None:
        raise NotFound(f"No batch {batch_id}")
    # Plain rows, not ORM objects: a batch may hold a thousand tasks, read on every poll.
    tasks = session.execute(
        select(*TASK_COLUMNS).where(VideoTask.batch_id == batch_id).order_by(VideoTask.position)
    ).all()
    counts = _empty_counts()
    for task in tasks:
        counts[task.status] += 1
    views = [TaskView.of(task) for task in tasks]
    return _view(batch, ledger.current_balance(session, account_id), counts, views)


def list_batches(
    session: Session,
    account_id: uuid.UUID,
    *,
    limit: int,
    starting_after: uuid.UUID | None = None,
    status: str | None = None,
) -> BatchPage:
    """The account's batches, newest first, after the cursor batch ``starting_after``."""
    query = select(BatchJob).where(BatchJob.account_id == account_id)
    if status is not None:
        query = query.where(BatchJob.status == status)
    page, has_more = newest_first(
        session,
        query,
        BatchJob,
        account_id=account_id,
        starting_after=starting_after,
        limit=limit,
        what="batch",
    )
    balance = ledger.current_balance(session, account_id)
    counts = _counts_by_batch(session, [batch.id for batch in page])
    return BatchPage(
        data=[_view(batch, balance, counts[batch.id], []) for batch in page],
        has_more=has_more,
    )
