"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-12-04 15:45:46.987581
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import videobatch.db

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("credits_balance", sa.BigInteger(), nullable=False),
        sa.Column("cost_per_video", sa.Integer(), nullable=False),
        sa.Column("created_at", videobatch.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "credits_balance >= 0", name=op.f("ck_accounts_credits_balance_non_negative")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", videobatch.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", videobatch.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", videobatch.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_api_keys_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    op.create_index(op.f("ix_api_keys_account_id"), "api_keys", ["account_id"], unique=False)
    op.create_table(
        "batch_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.String(length=255), nullable=False),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("total_count", sa.Integer(), nullable=False),
        sa.Column("cost_per_video", sa.Integer(), nullable=False),
        sa.Column("required_credits", sa.Integer(), nullable=False),
        sa.Column(
            "metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("cancel_requested_at", videobatch.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", videobatch.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", videobatch.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", videobatch.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_batch_jobs_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch_jobs")),
        sa.UniqueConstraint("account_id", "request_id", name="uq_batch_jobs_account_request"),
    )
    op.create_index(
        "ix_batch_jobs_account_created",
        "batch_jobs",
        ["account_id", "created_at", "id"],
        unique=False,
    )
    op.create_table(
        "video_tasks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column(
            "params",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("lease_token", sa.String(length=64), nullable=True),
        sa.Column("leased_by", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", videobatch.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("run_after", videobatch.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("video_url", sa.Text(), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("created_at", videobatch.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", videobatch.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", videobatch.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batch_jobs.id"], name=op.f("fk_video_tasks_batch_id_batch_jobs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_video_tasks")),
        sa.UniqueConstraint("batch_id", "position", name="uq_video_tasks_batch_position"),
    )
    op.create_index(
        "ix_video_tasks_batch_status", "video_tasks", ["batch_id", "status"], unique=False
    )
    op.create_index(
        "ix_video_tasks_claimable",
        "video_tasks",
        ["run_after", "created_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('queued', 'processing')"),
        sqlite_where=sa.text("status IN ('queued', 'processing')"),
    )
    op.create_table(
        "credit_ledger",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("delta", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=True),
        sa.Column("task_id", sa.Uuid(), nullable=True),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("entry_key", sa.String(length=100), nullable=False),
        sa.Column("created_at", videobatch.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_credit_ledger_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batch_jobs.id"], name=op.f("fk_credit_ledger_batch_id_batch_jobs")
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["video_tasks.id"], name=op.f("fk_credit_ledger_task_id_video_tasks")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_ledger")),
        sa.UniqueConstraint("entry_key", name=op.f("uq_credit_ledger_entry_key")),
    )
    op.create_index(
        "ix_credit_ledger_account_created",
        "credit_ledger",
        ["account_id", "created_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_credit_ledger_account_created", table_name="credit_ledger")
    op.drop_table("credit_ledger")
    op.drop_index(
        "ix_video_tasks_claimable",
        table_name="video_tasks",
        postgresql_where=sa.text("status IN ('queued', 'processing')"),
        sqlite_where=sa.text("status IN ('queued', 'processing')"),
    )
    op.drop_index("ix_video_tasks_batch_status", table_name="video_tasks")
    op.drop_table("video_tasks")
    op.drop_index("ix_batch_jobs_account_created", table_name="batch_jobs")
    op.drop_table("batch_jobs")
    op.drop_index(op.f("ix_api_keys_account_id"), table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("accounts")
