"""Batches and the video tasks they are made of."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from videobatch.db import Base, new_id, utcnow


class TaskStatus(enum.StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class BatchStatus(enum.StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    PARTIALLY_COMPLETED = "partially_completed"
    CANCELLED = "cancelled"


TASK_ENDED = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)
BATCH_ENDED = (
    BatchStatus.COMPLETED,
    BatchStatus.FAILED,
    BatchStatus.PARTIALLY_COMPLETED,
    BatchStatus.CANCELLED,
)


class BatchJob(Base):
    __tablename__ = "batch_jobs"
    __table_args__ = (
        # The final fence against a duplicate batch: Redis only makes duplicates rare and cheap.
        UniqueConstraint("account_id", "request_id", name="uq_batch_jobs_account_request"),
        # Newest-first listing per account, with the id as the cursor's tie-breaker.
        Index("ix_batch_jobs_account_created", "account_id", "created_at", "id"),
        # Claims skip the tasks of batches being cancelled: few rows, whatever the history.
        Index(
            "ix_batch_jobs_cancelling",
            "id",
            postgresql_where=text("cancel_requested_at IS NOT NULL AND finished_at IS NULL"),
            sqlite_where=text("cancel_requested_at IS NOT NULL AND finished_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"))
    request_id: Mapped[str] = mapped_column(String(255))
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), default=BatchStatus.QUEUED)
    total_count: Mapped[int]
    cost_per_video: Mapped[int]
    required_credits: Mapped[int]
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    cancel_requested_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None]


class VideoTask(Base):
    __tablename__ = "video_tasks"
    __table_args__ = (
        UniqueConstraint("batch_id", "position", name="uq_video_tasks_batch_position"),
        # Counts per batch read only this index.
        Index("ix_video_tasks_batch_status", "batch_id", "status"),
        # Claims read ready work in order; the partial index holds only unfinished tasks.
        Index(
            "ix_video_tasks_claimable",
            "run_after",
            "created_at",
            postgresql_where=text("status IN ('queued', 'processing')"),
            sqlite_where=text("status IN ('queued', 'processing')"),
        ),
        # The reaper reads leases that ran out, in expiry order (migration 0002).
        Index(
            "ix_video_tasks_lease_expiry",
            "lease_expires_at",
            postgresql_where=text("status = 'processing'"),
            sqlite_where=text("status = 'processing'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    batch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("batch_jobs.id"))
    position: Mapped[int]
    prompt: Mapped[str] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(32), default=TaskStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=3)
    lease_token: Mapped[str | None] = mapped_column(String(64))
    leased_by: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None]
    run_after: Mapped[datetime] = mapped_column(default=utcnow)
    video_url: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
