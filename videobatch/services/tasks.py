"""Video tasks through their life: claimed under a lease, reported, retried, refunded.

What every function here keeps (docs/WORKERS.md tells the whole design):

- A task's status changes only in a transaction that first locks its batch row
  (``batches.lock_batch``) and then recomputes the batch's status
  (``batches.refresh_batch_status``). A transaction that touches several batches locks them in
  id order and skips the ones locked elsewhere, so no two transactions wait on each other in a
  cycle. The one exception is the claim, which moves a batch from ``queued`` to ``processing``
  only.
- A report counts only with the task's current ``lease_token``, its fencing token: a worker whose
  lease was taken over or reaped is answered ``lease_lost`` and changes nothing.
- A task that ends ``failed`` or ``cancelled`` is refunded in that same transaction
  (``refund:<task_id>`` can be written once).
- While a task is processing, its ``run_after`` equals its ``lease_expires_at``. The claim index
  ``(run_after, created_at) WHERE status IN ('queued', 'processing')`` then holds, in one order,
  the ready queued tasks and the leases that ran out, while live leases sit beyond ``now`` where
  no claim scans.
"""

from __future__ import annotations

import hmac
import random
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Uuid, bindparam, func, literal, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from videobatch import metrics
from videobatch.db import UTCDateTime, utcnow
from videobatch.errors import LeaseLost, NotFound
from videobatch.models import BatchJob, BatchStatus, TaskStatus, VideoTask
from videobatch.services import ledger
from videobatch.services.batches import lock_batch, refresh_batch_status

LEASE_EXPIRED = "lease_expired"

# One statement per claim (PostgreSQL). `picked` is MATERIALIZED so the row locks are taken once,
# in claim order, and SKIP LOCKED lets concurrent claimers pass each other instead of queueing.
# `picked` reads the claim index in order and stops after :max_tasks rows: every condition in it
# is one the planner can estimate (a queued task always has attempts left, so only an expired
# lease needs that check), and the batches being cancelled come from their own tiny partial index
# (ix_batch_jobs_cancelling), so the plan stays an ordered index scan under any backlog.
# The batch step moves the touched batches from queued to processing; it skips a batch locked
# elsewhere rather than wait for it while holding task locks (that order could deadlock with a
# cancel), and whoever holds that lock recomputes the batch's status after our commit anyway.
CLAIM_SQL = """
WITH picked AS MATERIALIZED (
    SELECT t.id, t.status
    FROM video_tasks AS t
    WHERE t.status IN ('queued', 'processing')
      AND t.run_after <= :now
      AND (t.status = 'queued' OR (t.lease_expires_at <= :now AND t.attempts < t.max_attempts))
      AND NOT EXISTS (
          SELECT 1 FROM batch_jobs AS b
          WHERE b.id = t.batch_id AND b.cancel_requested_at IS NOT NULL AND b.finished_at IS NULL
      )
    ORDER BY t.run_after, t.created_at
    LIMIT :max_tasks
    FOR UPDATE OF t SKIP LOCKED
),
claimed AS (
    UPDATE video_tasks AS v
    SET status = 'processing',
        lease_token = replace(gen_random_uuid()::text, '-', ''),
        leased_by = :worker_id,
        lease_expires_at = :expires,
        run_after = :expires,
        attempts = v.attempts + 1,
        started_at = coalesce(v.started_at, :now),
        error_code = CASE WHEN v.status = 'processing' THEN 'lease_expired' ELSE v.error_code END
    FROM picked
    WHERE v.id = picked.id
    RETURNING v.id, v.batch_id, v.position, v.prompt, v.params, v.attempts, v.max_attempts,
              v.lease_token, v.lease_expires_at, v.created_at, picked.status AS previous_status
),
started AS (
    UPDATE batch_jobs AS j
    SET status = 'processing', updated_at = :now
    WHERE j.id = ANY (ARRAY(
        SELECT q.id FROM batch_jobs AS q
        WHERE q.id = ANY (ARRAY(SELECT DISTINCT batch_id FROM claimed)) AND q.status = 'queued'
        ORDER BY q.id
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING j.id
)
SELECT id, batch_id, position, prompt, params, attempts, max_attempts, lease_token,
       lease_expires_at, created_at, previous_status
FROM claimed
"""

_claim_statement = (
    text(CLAIM_SQL)
    .bindparams(
        bindparam("now", type_=UTCDateTime()),
        bindparam("expires", type_=UTCDateTime()),
    )
    .columns(
        id=Uuid(),
        batch_id=Uuid(),
        params=JSONB(),
        lease_expires_at=UTCDateTime(),
        created_at=UTCDateTime(),
    )
)


@dataclass(frozen=True)
class ClaimedTask:
    """A task handed to a worker, with the lease it must quote in every report."""

    task_id: uuid.UUID
    batch_id: uuid.UUID
    position: int
    prompt: str
    params: dict[str, Any]
    attempt: int
    max_attempts: int
    lease_token: str
    lease_expires_at: datetime


@dataclass(frozen=True)
class TaskOutcome:
    """A task after a report: where it stands now and what the report did to it."""

    task_id: uuid.UUID
    batch_id: uuid.UUID
    status: str
    attempts: int
    max_attempts: int
    run_after: datetime | None
    video_url: str | None
    error_code: str | None
    refunded: bool
    batch_status: str
    replay: bool


@dataclass(frozen=True)
class LeaseRenewal:
    task_id: uuid.UUID
    lease_expires_at: datetime
    cancel_requested: bool


@dataclass
class ReapReport:
    requeued: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def total(self) -> int:
        return self.requeued + self.failed + self.cancelled


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: attempt n waits between half and all of base * 2^(n-1)."""

    base_delay_s: float = 2.0
    max_delay_s: float = 300.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** max(attempt - 1, 0))
        return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


# -- claim -------------------------------------------------------------------------------------


def claim_tasks(
    session: Session,
    *,
    worker_id: str,
    max_tasks: int,
    lease_seconds: int,
    now: datetime | None = None,
) -> list[ClaimedTask]:
    """Lease up to ``max_tasks`` ready tasks to ``worker_id``, ready ones first, oldest first."""
    now = now or utcnow()
    expires = now + timedelta(seconds=lease_seconds)
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(
            _claim_statement,
            {"now": now, "expires": expires, "max_tasks": max_tasks, "worker_id": worker_id},
        ).all()
    else:
        rows = _claim_serialized(session, worker_id, max_tasks, now, expires)
    expired = sum(row.previous_status == TaskStatus.PROCESSING for row in rows)
    if expired:
        metrics.count_after_commit(session, metrics.LEASE_EXPIRIES, expired)
    rows = sorted(rows, key=lambda row: (row.created_at, row.batch_id, row.position))
    return [
        ClaimedTask(
            task_id=row.id,
            batch_id=row.batch_id,
            position=row.position,
            prompt=row.prompt,
            params=dict(row.params or {}),
            attempt=row.attempts,
            max_attempts=row.max_attempts,
            lease_token=row.lease_token,
            lease_expires_at=row.lease_expires_at,
        )
        for row in rows
    ]


def _claim_serialized(
    session: Session, worker_id: str, max_tasks: int, now: datetime, expires: datetime
) -> list[Any]:
    """The claim where the database has one writer (SQLite): its transaction is the lock."""
    cancelling = (
        select(BatchJob.id)
        .where(
            BatchJob.id == VideoTask.batch_id,
            BatchJob.cancel_requested_at.is_not(None),
            BatchJob.finished_at.is_(None),
        )
        .exists()
    )
    picked = session.execute(
        select(VideoTask.id, VideoTask.status)
        .where(
            VideoTask.status.in_((TaskStatus.QUEUED.value, TaskStatus.PROCESSING.value)),
            VideoTask.run_after <= now,
            (VideoTask.status == TaskStatus.QUEUED.value)
            | ((VideoTask.lease_expires_at <= now) & (VideoTask.attempts < VideoTask.max_attempts)),
            ~cancelling,
        )
        .order_by(VideoTask.run_after, VideoTask.created_at)
        .limit(max_tasks)
    ).all()
    for task_id, status in picked:
        values: dict[str, Any] = {
            "status": TaskStatus.PROCESSING.value,
            "lease_token": secrets.token_hex(16),
            "leased_by": worker_id,
            "lease_expires_at": expires,
            "run_after": expires,
            "attempts": VideoTask.attempts + 1,
            "started_at": func.coalesce(VideoTask.started_at, literal(now, UTCDateTime())),
        }
        if status == TaskStatus.PROCESSING:
            values["error_code"] = LEASE_EXPIRED
        session.execute(update(VideoTask).where(VideoTask.id == task_id).values(**values))
    ids = [task_id for task_id, _ in picked]
    if not ids:
        return []
    previous = dict(picked)
    rows = session.execute(
        select(
            VideoTask.id,
            VideoTask.batch_id,
            VideoTask.position,
            VideoTask.prompt,
            VideoTask.params,
            VideoTask.attempts,
            VideoTask.max_attempts,
            VideoTask.lease_token,
            VideoTask.lease_expires_at,
            VideoTask.created_at,
        ).where(VideoTask.id.in_(ids))
    ).all()
    session.execute(
        update(BatchJob)
        .where(
            BatchJob.id.in_({row.batch_id for row in rows}),
            BatchJob.status == BatchStatus.QUEUED.value,
        )
        .values(status=BatchStatus.PROCESSING.value, updated_at=now)
    )
    return [_WithPrevious(row, previous[row.id]) for row in rows]


class _WithPrevious:
    """A claimed row and the status it had before the claim."""

    def __init__(self, row: Any, previous_status: str) -> None:
        self._row = row
        self.previous_status = previous_status

    def __getattr__(self, name: str) -> Any:
        return getattr(self._row, name)


# -- reports -----------------------------------------------------------------------------------


def renew_lease(
    session: Session,
    task_id: uuid.UUID,
    lease_token: str,
    *,
    lease_seconds: int,
    now: datetime | None = None,
) -> LeaseRenewal:
    """Extend the lease of a task its worker still holds; say whether its batch was cancelled.

    No status changes, so no batch lock: one guarded UPDATE is the whole fence.
    """
    expires = (now or utcnow()) + timedelta(seconds=lease_seconds)
    batch_id = session.execute(
        update(VideoTask)
        .where(
            VideoTask.id == task_id,
            VideoTask.lease_token == lease_token,
            VideoTask.status == TaskStatus.PROCESSING.value,
        )
        .values(lease_expires_at=expires, run_after=expires)
        .returning(VideoTask.batch_id)
    ).scalar_one_or_none()
    if batch_id is None:
        _raise_missing_or_lost(session, task_id)
    cancel_requested_at = session.execute(
        select(BatchJob.cancel_requested_at).where(BatchJob.id == batch_id)
    ).scalar_one()
    return LeaseRenewal(
        task_id=task_id, lease_expires_at=expires, cancel_requested=cancel_requested_at is not None
    )


def complete_task(
    session: Session,
    task_id: uuid.UUID,
    lease_token: str,
    *,
    video_url: str,
    now: datetime | None = None,
) -> TaskOutcome:
    """Mark a leased task completed; the same report again is a replay, any other token is lost."""
    batch, task = _lock_task(session, task_id, lease_token)
    if task.status == TaskStatus.COMPLETED:
        return _outcome(task, batch, replay=True)
    if task.status != TaskStatus.PROCESSING:
        raise LeaseLost(f"Task {task_id} is {task.status}; this lease no longer holds it")
    now = now or utcnow()
    task.status = TaskStatus.COMPLETED.value
    task.video_url = video_url
    task.error_code = None
    task.error_message = None
    task.finished_at = now
    task.lease_expires_at = None
    refresh_batch_status(session, batch)
    return _outcome(task, batch)


def fail_task(
    session: Session,
    task_id: uuid.UUID,
    lease_token: str,
    *,
    error_code: str,
    error_message: str,
    retryable: bool,
    policy: RetryPolicy,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> TaskOutcome:
    """Record a failed attempt: requeue it with backoff, or end it failed (or cancelled), refunded.

    A retryable failure of a task whose batch the client cancelled ends ``cancelled``: it would
    never be claimed again. The same report again answers the state it left (a replay).
    """
    batch, task = _lock_task(session, task_id, lease_token)
    if task.status in (TaskStatus.QUEUED, TaskStatus.FAILED, TaskStatus.CANCELLED):
        return _outcome(task, batch, replay=True)
    if task.status != TaskStatus.PROCESSING:
        raise LeaseLost(f"Task {task_id} is {task.status}; this lease no longer holds it")
    now = now or utcnow()
    task.error_code = error_code
    task.error_message = error_message
    refunded = False
    if retryable and batch.cancel_requested_at is not None:
        _end_refunded(session, batch, task, TaskStatus.CANCELLED, now)
        refunded = True
    elif retryable and task.attempts < task.max_attempts:
        task.status = TaskStatus.QUEUED.value
        task.run_after = now + timedelta(seconds=policy.delay(task.attempts, rng))
        task.lease_expires_at = None
    else:
        _end_refunded(session, batch, task, TaskStatus.FAILED, now)
        refunded = True
    refresh_batch_status(session, batch)
    return _outcome(task, batch, refunded=refunded)


def _lock_task(
    session: Session, task_id: uuid.UUID, lease_token: str
) -> tuple[BatchJob, VideoTask]:
    """The task's batch, then the task, locked in that order; raise unless the token holds it."""
    batch_id = session.execute(
        select(VideoTask.batch_id).where(VideoTask.id == task_id)
    ).scalar_one_or_none()
    if batch_id is None:
        raise NotFound(f"No task {task_id}")
    batch = lock_batch(session, batch_id)
    task = session.execute(
        select(VideoTask)
        .where(VideoTask.id == task_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    if task.lease_token is None or not hmac.compare_digest(
        task.lease_token.encode(), lease_token.encode()
    ):
        raise LeaseLost(f"Task {task_id} is leased by someone else now")
    return batch, task


def _raise_missing_or_lost(session: Session, task_id: uuid.UUID) -> None:
    exists = session.execute(select(VideoTask.id).where(VideoTask.id == task_id)).first()
    if exists is None:
        raise NotFound(f"No task {task_id}")
    raise LeaseLost(f"Task {task_id} is no longer held by this lease")


def _end_refunded(
    session: Session, batch: BatchJob, task: VideoTask, status: TaskStatus, now: datetime
) -> None:
    """End a task unsuccessfully and give its credits back, in the caller's transaction."""
    task.status = status.value
    task.finished_at = now
    task.lease_expires_at = None
    ledger.refund_task(session, batch.account_id, batch.id, task.id, batch.cost_per_video)


def _outcome(
    task: VideoTask, batch: BatchJob, *, refunded: bool = False, replay: bool = False
) -> TaskOutcome:
    return TaskOutcome(
        task_id=task.id,
        batch_id=batch.id,
        status=task.status,
        attempts=task.attempts,
        max_attempts=task.max_attempts,
        run_after=task.run_after if task.status == TaskStatus.QUEUED else None,
        video_url=task.video_url,
        error_code=task.error_code,
        refunded=refunded,
        batch_status=batch.status,
        replay=replay,
    )


# -- the reaper --------------------------------------------------------------------------------


def reap_expired_leases(
    session: Session, *, now: datetime | None = None, limit: int = 100
) -> ReapReport:
    """Settle up to ``limit`` processing tasks whose lease ran out and nobody reclaimed.

    A task with attempts left goes back to ``queued``; one with none left ends ``failed``; one
    whose batch was cancelled ends ``cancelled``; the last two are refunded. Batches locked by
    another transaction are skipped: the next pass gets them.
    """
    now = now or utcnow()
    report = ReapReport()
    candidates = session.execute(
        select(VideoTask.id, VideoTask.batch_id)
        .where(VideoTask.status == TaskStatus.PROCESSING.value, VideoTask.lease_expires_at <= now)
        .order_by(VideoTask.lease_expires_at)
        .limit(limit)
    ).all()
    if not candidates:
        return report
    batches = session.execute(
        select(BatchJob)
        .where(BatchJob.id.in_({batch_id for _, batch_id in candidates}))
        .order_by(BatchJob.id)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    ).scalars()
    for batch in batches:
        expired = session.execute(
            select(VideoTask)
            .where(
                VideoTask.id.in_([task_id for task_id, b in candidates if b == batch.id]),
                VideoTask.status == TaskStatus.PROCESSING.value,
                VideoTask.lease_expires_at <= now,
            )
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        ).scalars()
        for task in expired:
            _settle_expired(session, batch, task, now, report)
        refresh_batch_status(session, batch)
    return report


def _settle_expired(
    session: Session, batch: BatchJob, task: VideoTask, now: datetime, report: ReapReport
) -> None:
    metrics.count_after_commit(session, metrics.LEASE_EXPIRIES)
    task.error_code = LEASE_EXPIRED
    task.error_message = f"The lease of {task.leased_by or 'its worker'} ran out"
    task.lease_token = None  # the late worker's reports are refused from now on
    if batch.cancel_requested_at is not None:
        _end_refunded(session, batch, task, TaskStatus.CANCELLED, now)
        report.cancelled += 1
    elif task.attempts >= task.max_attempts:
        _end_refunded(session, batch, task, TaskStatus.FAILED, now)
        report.failed += 1
    else:
        task.status = TaskStatus.QUEUED.value
        task.lease_expires_at = None
        task.run_after = now
        report.requeued += 1
