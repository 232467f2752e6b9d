"""Readiness: do PostgreSQL and Redis answer, within a deadline?"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import redis
from sqlalchemy import text

from videobatch.extensions import Database

# Checks run on their own threads so that a dependency that hangs costs the probe its deadline,
# not a web thread for as long as the connect timeout. Few threads: probes are rare.
_checks = ThreadPoolExecutor(max_workers=4, thread_name_prefix="readiness")


def _ping_database(database: Database) -> None:
    with database.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _ping_redis(client: redis.Redis) -> None:
    client.ping()


def _timed(check: Callable[[], None]) -> float:
    started = time.perf_counter()
    check()
    return round((time.perf_counter() - started) * 1000, 2)


def check_dependencies(
    database: Database, client: redis.Redis, *, timeout_s: float
) -> dict[str, dict[str, Any]]:
    """Each dependency's answer: ``{"ok": True, "latency_ms": ...}`` or ``{"ok": False, ...}``."""
    futures = {
        "database": _checks.submit(_timed, lambda: _ping_database(database)),
        "redis": _checks.submit(_timed, lambda: _ping_redis(client)),
    }
    wait(futures.values(), timeout=timeout_s)
    results: dict[str, dict[str, Any]] = {}
    for name, future in futures.items():
        if not future.done():
            future.cancel()
            results[name] = {"ok": False, "error": f"no answer within {timeout_s:g} s"}
        elif future.exception() is not None:
            # The class name only: driver messages can carry hosts and users.
            results[name] = {"ok": False, "error": type(future.exception()).__name__}
        else:
            results[name] = {"ok": True, "latency_ms": future.result()}
    return results
