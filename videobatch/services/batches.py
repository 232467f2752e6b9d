"""Batches: accepting them exactly once, and reading them back."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from videobatch.auth import Caller
from videobatch.db import utcnow
from videobatch.errors import IdempotencyKeyReused, RequestInProgress
from videobatch.extensions import Database
from videobatch.models import Account, BatchJob, BatchStatus, TaskStatus, VideoTask
from videobatch.models.batch import BATCH_ENDED
from videobatch.services import ledger
from videobatch.services.idempotency import (
    CachedRequest,
    IdempotencyGate,
    body_digest,
    fingerprint,
)

TASK_PARAMS = ("duration_seconds", "aspect_ratio", "style", "negative_prompt", "seed", "client_ref")

# The create path's statements are Core statements on the tables, built once: they skip the
# ORM's per-call statement building and bulk bookkeeping, which cost more CPU than the round
# trips themselves (docs/PERFORMANCE.md).
COST_PER_VIDEO = select(Account.__table__.c.cost_per_video).where(
    Account.__table__.c.id == bindparam("account_id")
)
INSERT_BATCH = insert(BatchJob.__table__)
INSERT_TASKS = insert(VideoTask.__table__)  # one multi-row INSERT per 1,000 tasks


@dataclass(frozen=True)
class BatchSummary:
    """A batch as the create endpoint answers it."""

    batch_id: uuid.UUID
    request_id: str
    status: str
    total_count: int
    cost_per_video: int
    required_credits: int
    available_credits: int
    created_at: datetime
    fingerprint: str
    idempotent_replay: bool


def submit_batch(
    db: Database,
    gate: IdempotencyGate,
    caller: Caller,
    request_id: str,
    body: bytes,
    load_payload: Callable[[], dict[str, Any]],
    *,
    max_attempts: int,
) -> BatchSummary:
    """Create the batch this request id stands for, or replay the one it already made.

    ``load_payload`` parses and validates ``body`` (raising the 400s); a replay of the very bytes
    that created the batch does not need it. This function owns its transactions, unlike the
    rest of ``services``: the in-flight lock has to be held across the commit and released only
    after it, and the replay cache written only once the batch is durable.
    """
    account_id = caller.account_id
    deadline = time.monotonic() + gate.wait_ms / 1000
    digest = body_digest(body)

    cached = gate.recall(account_id, request_id)
    if cached is not None and cached.body_digest == digest:
        replay = _replay(db, caller, request_id, cached.fingerprint, cached.batch_id)
        if replay is not None:
            return replay
        cached = None  # the entry names a batch the database lacks: asking again cannot help
    payload = load_payload()
    payload_fingerprint = fingerprint(payload)
    if cached is not None:
        replay = _replay(db, caller, request_id, payload_fingerprint, cached.batch_id)
        if replay is not None:
            return replay

    while True:
        with gate.lock(account_id, request_id) as held:
            if held.acquired is False:
                other = gate.wait_for_other(account_id, request_id, deadline)
                if other is not None:
                    replay = _replay(db, caller, request_id, payload_fingerprint, other.batch_id)
                    if replay is not None:
                        return replay
                if time.monotonic() < deadline:
                    continue  # the other request ended without a batch: try again ourselves
                replay = _replay(db, caller, request_id, payload_fingerprint)
                if replay is not None:
                    return replay
                raise RequestInProgress(
                    "A request with this request id is still being processed; retry shortly",
                    headers={"Retry-After": "1"},
                )

            # We hold the lock, or Redis cannot say: the database's unique constraint decides.
            # No lookup first: the cache missed, so a batch for this id is rare, and the
            # constraint finds it for free.
            try:
                with db.transaction() as session:
                    created = create_batch(
                        session,
                        account_id,
                        request_id,
                        payload_fingerprint,
                        payload,
                        max_attempts=max_attempts,
                    )
            except IntegrityError:
                # A batch with this request id exists: committed by another request (the lock
                # was lost, expired or unavailable), or known only to the database (the cache
                # lost its entry). Answer with it.
                replay = _replay(db, caller, request_id, payload_fingerprint)
                if replay is None:
                    raise
                held.remember_on_release(
                    CachedRequest(replay.batch_id, payload_fingerprint, digest)
                )
                return replay
            held.remember_on_release(CachedRequest(created.batch_id, payload_fingerprint, digest))
            return created


def create_batch(
    session: Session,
    account_id: uuid.UUID,
    request_id: str,
    payload_fingerprint: str,
    payload: dict[str, Any],
    *,
    max_attempts: int,
) -> BatchSummary:
    """Write the batch, its tasks and its charge; the caller commits them together.

    The rows go in before the charge so the account row, which every create of the account
    updates, stays locked only for the charge and the commit.
    """
    items = payload["items"]
    cost_per_video = session.execute(COST_PER_VIDEO, {"account_id": account_id}).scalar_one()
    required = cost_per_video * len(items)
    batch_id = uuid.uuid4()
    now = utcnow()
    session.execute(
        INSERT_BATCH,
        {
            "id": batch_id,
            "account_id": account_id,
            "request_id": request_id,
            "request_fingerprint": payload_fingerprint,
            "status": BatchStatus.QUEUED.value,
            "total_count": len(items),
            "cost_per_video": cost_per_video,
            "required_credits": required,
            "metadata": payload.get("metadata") or {},
            "created_at": now,
            "updated_at": now,
        },
    )
    session.execute(
        INSERT_TASKS,
        [
            {
                "id": uuid.uuid4(),
                "batch_id": batch_id,
                "position": position,
                "prompt": item["prompt"],
                "params": {name: item[name] for name in TASK_PARAMS if name in item},
                "status": TaskStatus.QUEUED.value,
                "attempts": 0,
                "max_attempts": max_attempts,
                "run_after": now,
                "created_at": now,
            }
            for position, item in enumerate(items)
        ],
    )
    balance = ledger.charge_for_batch(session, account_id, batch_id, required)
    return BatchSummary(
        batch_id=batch_id,
        request_id=request_id,
        status=BatchStatus.QUEUED.value,
        total_count=len(items),
        cost_per_video=cost_per_video,
        required_credits=required,
        available_credits=balance,
        created_at=now,
        fingerprint=payload_fingerprint,
        idempotent_replay=False,
    )


def _replay(
    db: Database,
    caller: Caller,
    request_id: str,
    payload_fingerprint: str,
    batch_id: uuid.UUID | None = None,
) -> BatchSummary | None:
    """The existing batch for this request id, with its status and the balance as of now."""
    with db.read() as session:
        summary = find_batch_summary(
            session, caller.account_id, request_id=request_id, batch_id=batch_id
        )
    if summary is None:
        return None
    if summary.fingerprint != payload_fingerprint:
        raise IdempotencyKeyReused(
            "This request id was already used with a different payload; use a new request id",
            batch_id=str(summary.batch_id),
        )
    return summary


def find_batch_summary(
    session: Session,
    account_id: uuid.UUID,
    *,
    request_id: str | None = None,
    batch_id: uuid.UUID | None = None,
) -> BatchSummary | None:
    """Look a batch up by request id or id, always within ``account_id``."""
    row = session.execute(
        _summary_query(by_batch_id=batch_id is not None, by_request_id=request_id is not None),
        {"account_id": account_id, "batch_id": batch_id, "request_id": request_id},
    ).first()
    if row is None:
        return None
    return BatchSummary(
        batch_id=row.id,
        request_id=row.request_id,
        status=row.status,
        total_count=row.total_count,
        cost_per_video=row.cost_per_video,
        required_credits=row.required_credits,
        available_credits=row.credits_balance,
        created_at=row.created_at,
        fingerprint=row.request_fingerprint,
        idempotent_replay=True,
    )


@functools.cache
def _summary_query(*, by_batch_id: bool, by_request_id: bool) -> Select:
    batches, accounts = BatchJob.__table__, Account.__table__
    query = (
        select(
            batches.c.id,
            batches.c.request_id,
            batches.c.status,
            batches.c.total_count,
            batches.c.cost_per_video,
            batches.c.required_credits,
            batches.c.created_at,
            batches.c.request_fingerprint,
            accounts.c.credits_balance,
        )
        .join_from(batches, accounts, accounts.c.id == batches.c.account_id)
        .where(batches.c.account_id == bindparam("account_id"))
    )
    if by_batch_id:
        query = query.where(batches.c.id == bindparam("batch_id"))
    if by_request_id:
        query = query.where(batches.c.request_id == bindparam("request_id"))
    return query


# -- status ------------------------------------------------------------------------------------


def derive_status(
    counts: dict[str, int], total: int, *, current: str, cancel_requested: bool
) -> str:
    """A batch's status from its task counts (SPEC 6).

    ``current`` matters only before the end: a batch that has started stays ``processing`` even
    while a retried task waits in ``queued`` again.
    """
    completed = counts.get(TaskStatus.COMPLETED, 0)
    failed = counts.get(TaskStatus.FAILED, 0)
    cancelled = counts.get(TaskStatus.CANCELLED, 0)
    if completed + failed + cancelled < total:
        if current == BatchStatus.QUEUED and counts.get(TaskStatus.QUEUED, 0) == total:
            return BatchStatus.QUEUED.value
        return BatchStatus.PROCESSING.value
    if cancel_requested and cancelled:
        return BatchStatus.CANCELLED.value
    if completed == total:
        return BatchStatus.COMPLETED.value
    if failed == total:
        return BatchStatus.FAILED.value
    return BatchStatus.PARTIALLY_COMPLETED.value


def task_counts(session: Session, batch_id: uuid.UUID) -> dict[str, int]:
    """How many of the batch's tasks are in each status (every status present, zeros included)."""
    rows = session.execute(
        select(VideoTask.status, func.count())
        .where(VideoTask.batch_id == batch_id)
        .group_by(VideoTask.status)
    ).all()
    counts = {status.value: 0 for status in TaskStatus}
    counts.update({status: count for status, count in rows})
    return counts


def has_unfinished_tasks(session: Session, batch_id: uuid.UUID) -> bool:
    """Whether any task of the batch is still queued or processing (one index probe)."""
    unfinished = (TaskStatus.QUEUED.value, TaskStatus.PROCESSING.value)
    return (
        session.execute(
            select(VideoTask.id)
            .where(VideoTask.batch_id == batch_id, VideoTask.status.in_(unfinished))
            .limit(1)
        ).first()
        is not None
    )


def lock_batch(session: Session, batch_id: uuid.UUID) -> BatchJob | None:
    """The batch row, locked for this transaction.

    Every transaction that changes a task's status takes this lock first, so the last task to
    end always sees the others' committed states and settles the batch (READ COMMITTED reads a
    fresh snapshot per statement once the lock is held).
    """
    return session.execute(
        select(BatchJob).where(BatchJob.id == batch_id).with_for_update()
    ).scalar_one_or_none()


def refresh_batch_status(session: Session, batch: BatchJob) -> str:
    """Recompute ``batch``'s status from its tasks; call with the batch locked (``lock_batch``)."""
    if batch.status == BatchStatus.PROCESSING and has_unfinished_tasks(session, batch.id):
        # The common report: a started batch stays processing until its last task ends. One
        # index probe answers that; counting every task on every report would make a batch of n
        # tasks cost O(n^2) to finish.
        return batch.status
    status = derive_status(
        task_counts(session, batch.id),
        batch.total_count,
        current=batch.status,
        cancel_requested=batch.cancel_requested_at is not None,
    )
    if status != batch.status:
        now = utcnow()
        batch.status = status
        batch.updated_at = now
        if status in BATCH_ENDED and batch.finished_at is None:
            batch.finished_at = now
    return status
