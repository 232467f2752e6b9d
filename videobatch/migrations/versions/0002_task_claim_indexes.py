"""index the leases of processing tasks, for the reaper

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 16:00:00

The reaper looks for processing tasks whose lease ran out. Without this index it would walk the
claim index through every ready queued task to find them; with it, it reads only the processing
tasks in lease order, and an empty answer costs one index probe.
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


def downgrade() -> None:
    op.drop_index(
        "ix_video_tasks_lease_expiry",
        table_name="video_tasks",
        postgresql_where=sa.text("status = 'processing'"),
        sqlite_where=sa.text("status = 'processing'"),
    )
