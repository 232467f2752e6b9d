"""The embedded default: one process, a SQLite file and an in-process Redis, ready to try."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

from flask import Flask

from videobatch import schema
from videobatch.services import accounts
from videobatch.worker.clients import LocalTaskClient
from videobatch.worker.providers import load_provider
from videobatch.worker.runner import Worker

DEMO_CREDITS = 1000


def prepare(app: Flask, *, base_url: str) -> Iterator[str]:
    """Apply the schema and, on first start, create the demo account; yields lines to print."""
    config = app.extensions["videobatch.config"]
    database = app.extensions["videobatch.db"]
    schema.upgrade(database.engine)
    yield f"videobatch serving on {base_url} (database {database.engine.url.render_as_string()})"
    credentials = Path(config.var_dir) / "demo-credentials.env"
    with database.transaction() as session:
        first_start = accounts.count_accounts(session) == 0
        if first_start:
            demo = accounts.create_account(
                session,
                "demo",
                credits=DEMO_CREDITS,
                cost_per_video=config.cost_per_video,
                pepper=config.api_key_pepper,
            )
    if first_start:
        credentials.parent.mkdir(parents=True, exist_ok=True)
        credentials.write_text(
            f"export BASE_URL={base_url}\n"
            f"export ENTERPRISE_API_KEY={demo.api_key}\n"
            f"export INTERNAL_WORKER_SECRET={config.internal_worker_secret}\n"
        )
        credentials.chmod(0o600)
        yield f"created demo account {demo.account_id} with {DEMO_CREDITS} credits"
        yield f"  ENTERPRISE_API_KEY={demo.api_key}"
        yield f"  INTERNAL_WORKER_SECRET={config.internal_worker_secret}"
    yield f"demo credentials: source {credentials}  (then: scripts/test-batch-flow.sh)"


def start_embedded_worker(app: Flask, *, concurrency: int = 2) -> Worker:
    """A worker thread in this process, on this app's database, with the configured provider.

    It is what makes a batch created against ``videobatch serve`` complete on its own.
    """
    config = app.extensions["videobatch.config"]
    client = LocalTaskClient(
        app.extensions["videobatch.db"], config, worker_id=f"embedded:{os.getpid()}"
    )
    worker = Worker(
        client,
        load_provider(config),
        concurrency=concurrency,
        lease_seconds=60,
        poll_interval_s=0.5,
        drain_timeout_s=10,
        name="embedded-worker",
    )
    threading.Thread(target=worker.run, name="embedded-worker", daemon=True).start()
    return worker
