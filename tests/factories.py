"""Rows the tests need, made through the same services the product uses."""

from __future__ import annotations

import uuid

from flask import Flask
from sqlalchemy import func, select

from videobatch.models import Account, BatchJob, LedgerEntry, VideoTask
from videobatch.services import accounts


def make_account(
    app: Flask, *, credits: int = 1000, cost_per_video: int = 10, name: str = "acme"
) -> accounts.NewAccount:
    """An account with an API key and an opening grant."""
    config = app.extensions["videobatch.config"]
    with app.extensions["videobatch.db"].transaction() as session:
        return accounts.create_account(
            session,
            name,
            credits=credits,
            cost_per_video=cost_per_video,
            pepper=config.api_key_pepper,
        )


def batch_body(count: int = 2, **item_fields) -> dict:
    """A valid create body with ``count`` items."""
    return {
        "items": [{"prompt": f"A cinematic video, take {i}", **item_fields} for i in range(count)]
    }


def ledger_state(app: Flask, account_id: uuid.UUID) -> dict[str, int]:
    """The numbers the money invariants are about, read straight from the database."""
    with app.extensions["videobatch.db"].transaction() as session:
        balance = session.execute(
            select(Account.credits_balance).where(Account.id == account_id)
        ).scalar_one()
        ledger_sum = session.execute(
            select(func.coalesce(func.sum(LedgerEntry.delta), 0)).where(
                LedgerEntry.account_id == account_id
            )
        ).scalar_one()
        charges = session.execute(
            select(func.count())
            .select_from(LedgerEntry)
            .where(LedgerEntry.account_id == account_id, LedgerEntry.kind == "charge")
        ).scalar_one()
        batches = session.execute(
            select(func.count()).select_from(BatchJob).where(BatchJob.account_id == account_id)
        ).scalar_one()
        tasks = session.execute(
            select(func.count())
            .select_from(VideoTask)
            .join(BatchJob)
            .where(BatchJob.account_id == account_id)
        ).scalar_one()
    return {
        "balance": balance,
        "ledger_sum": int(ledger_sum),
        "charges": charges,
        "batches": batches,
        "tasks": tasks,
    }
