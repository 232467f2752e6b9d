"""Cancelling a batch: queued tasks stop and are refunded at once, running ones run out."""

from __future__ import annotations

import uuid

from sqlalchemy import update
from sqlalchemy.orm import Session

from videobatch.db import utcnow
from videobatch.errors import NotFound
from videobatch.models import TaskStatus, VideoTask
from videobatch.models.batch import BATCH_ENDED
from videobatch.services import ledger
from videobatch.services.batches import lock_batch, refresh_batch_status
from videobatch.services.listing import BatchView, get_batch


def cancel_batch(session: Session, account_id: uuid.UUID, batch_id: uuid.UUID) -> BatchView:
    """Cancel the account's batch and answer it as it now stands (SPEC 4.6).

    Idempotent: a second cancel finds no queued task left, and an ended batch is returned
    unchanged. Only rows this UPDATE moved from ``queued`` are refunded, so a worker claiming
    the same tasks concurrently either got a task first (it runs) or finds it cancelled.
    """
    batch = lock_batch(session, batch_id)
    if batch is None or batch.account_id != account_id:
        raise NotFound(f"No batch {batch_id}")
    if batch.status not in BATCH_ENDED:
        now = utcnow()
        if batch.cancel_requested_at is None:
            batch.cancel_requested_at = now
            batch.updated_at = now
        cancelled = (
            session.execute(
                update(VideoTask)
                .where(VideoTask.batch_id == batch_id, VideoTask.status == TaskStatus.QUEUED)
                .values(status=TaskStatus.CANCELLED.value, finished_at=now)
                .returning(VideoTask.id)
                .execution_options(synchronize_session=False)
            )
            .scalars()
            .all()
        )
        ledger.refund_tasks(session, account_id, batch_id, cancelled, batch.cost_per_video)
        refresh_batch_status(session, batch)
        session.flush()
    return get_batch(session, account_id, batch_id)
