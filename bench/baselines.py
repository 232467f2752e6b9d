"""The bare baselines videobatch's figures are divided by.

Two minimal Flask apps served by the same gunicorn settings as videobatch, doing only the
unavoidable work of each path with psycopg2 and redis-py and nothing else (no auth, no
validation, no idempotency):

- ``insert_app``: ``POST /batch`` parses the JSON body and writes the rows a create writes
  (1 batch + N tasks + 1 ledger entry) in one transaction.
- ``lookup_app``: ``GET /batch/<request id>`` does one Redis GET and one indexed SELECT, the
  least a replay can do.

They read ``BENCH_DATABASE_URL`` (a libpq URL), ``BENCH_REDIS_URL`` and ``BENCH_ACCOUNT_ID`` from
the environment that ``bench/run.py`` gives their gunicorn.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime

import psycopg2
import psycopg2.extras
import psycopg2.pool
import redis
from flask import Flask, request

psycopg2.extras.register_uuid()


class _Pool:
    """A thread-safe psycopg2 pool opened lazily, after gunicorn forks."""

    def __init__(self) -> None:
        self._pool: psycopg2.pool.ThreadedConnectionPool | None = None
        self._opening = threading.Lock()

    @contextmanager
    def connection(self, *, autocommit: bool = False):
        if self._pool is None:
            with self._opening:
                if self._pool is None:
                    self._pool = psycopg2.pool.ThreadedConnectionPool(
                        1, 20, os.environ["BENCH_DATABASE_URL"]
                    )
        connection = self._pool.getconn()
        connection.autocommit = autocommit
        try:
            yield connection
        finally:
            self._pool.putconn(connection)


pool = _Pool()

insert_app = Flask("bench.insert")


@insert_app.post("/batch")
def insert_batch():
    """1 batch + N tasks + 1 ledger row in one transaction."""
    body = json.loads(request.get_data())
    items = body["items"]
    account_id = uuid.UUID(os.environ["BENCH_ACCOUNT_ID"])
    batch_id = uuid.uuid4()
    now = datetime.now(UTC)
    with pool.connection() as connection, connection, connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO batch_jobs (id, account_id, request_id, request_fingerprint, status,"
            " total_count, cost_per_video, required_credits, metadata, created_at, updated_at)"
            " VALUES (%s, %s, %s, %s, 'queued', %s, 10, %s, '{}', %s, %s)",
            (
                batch_id,
                account_id,
                str(batch_id),
                hashlib.sha256(request.get_data()).hexdigest(),
                len(items),
                10 * len(items),
                now,
                now,
            ),
        )
        psycopg2.extras.execute_values(
            cursor,
            "INSERT INTO video_tasks (id, batch_id, position, prompt, params, status, attempts,"
            " max_attempts, run_after, created_at) VALUES %s",
            [
                (uuid.uuid4(), batch_id, position, item["prompt"], "{}", "queued", 0, 3, now, now)
                for position, item in enumerate(items)
            ],
            page_size=1000,
        )
        cursor.execute(
            "INSERT INTO credit_ledger (id, account_id, delta, kind, batch_id, balance_after,"
            " entry_key, created_at) VALUES (%s, %s, %s, 'charge', %s, 0, %s, %s)",
            (uuid.uuid4(), account_id, -10 * len(items), batch_id, f"charge:{batch_id}", now),
        )
    return {"ok": True, "batch_id": str(batch_id)}, 201


lookup_app = Flask("bench.lookup")
_redis = redis.Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10"))


@lookup_app.get("/batch/<request_id>")
def lookup_batch(request_id: str):
    """One Redis GET and one indexed SELECT."""
    cached = _redis.get(f"bench:{request_id}")
    with pool.connection(autocommit=True) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, status, total_count FROM batch_jobs"
            " WHERE account_id = %s AND request_id = %s",
            (os.environ["BENCH_ACCOUNT_ID"], request_id),
        )
        row = cursor.fetchone()
    return {"ok": True, "cached": cached is not None, "batch_id": str(row[0]), "status": row[1]}
