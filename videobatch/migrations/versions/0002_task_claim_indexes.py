"""index the leases of processing tasks, and the batches being cancelled

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 16:00:00

The reaper looks for processing tasks whose lease ran out. Without this index it would walk the
claim index through every ready queued task to find them; with it, it reads only the processing
tasks in lease order, and an empty answer costs one index probe.

Claims skip the tasks of batches being cancelled. Those batches are few at any moment (a cancel
ends a batch as soon as its running tasks stop), so a partial index holding only them keeps that
check an index-only scan of a handful of rows, whatever the number of batches ever cancelled.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_video_tasks_lease_expiry",
        "video_tasks",
        ["lease_expires_at"],
        unique=False,
        postgresql_where=sa.text("status = 'processing'"),
        sqlite_where=sa.text("status = 'processing'"),
    )
    op.create_index(
        "ix_batch_jobs_cancelling",
        "batch_jobs",
        ["id"],
        unique=False,
        postgresql_where=sa.text("cancel_requested_at IS NOT NULL AND finished_at IS NULL"),
        sqlite_where=sa.text("cancel_requested_at IS NOT NULL AND finished_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_batch_jobs_cancelling",
        table_name="batch_jobs",
        postgresql_where=sa.text("cancel_requested_at IS NOT NULL AND finished_at IS NULL"),
        sqlite_where=sa.text("cancel_requested_at IS NOT NULL AND finished_at IS NULL"),
    )
    op.drop_index(
        "ix_video_tasks_lease_expiry",
        table_name="video_tasks",
        postgresql_where=sa.text("status = 'processing'"),
        sqlite_where=sa.text("status = 'processing'"),
    )
