"""Prometheus metrics: what the service counts, and the ``/metrics`` page.

Counters and histograms live in this process; under gunicorn ``PROMETHEUS_MULTIPROC_DIR`` makes
prometheus-client keep them in files that any worker can sum up when scraped. The queue gauges
are read from the database at scrape time instead of being tracked: the database is the truth
for them, and every API replica then reports the same numbers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime

from flask import Flask, Response, g, request
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import event, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from videobatch.db import utcnow
from videobatch.extensions import Database
from videobatch.models import TaskStatus, VideoTask

log = logging.getLogger(__name__)

# The *_created timestamps double the series for no question we ask of them.
disable_created_metrics()

REQUESTS = Counter(
    "videobatch_http_requests", "HTTP requests answered", ["method", "route", "status"]
)
REQUEST_DURATION = Histogram(
    "videobatch_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ERRORS = Counter("videobatch_errors", "Error answers by code", ["status", "code"])
BATCHES_CREATED = Counter("videobatch_batches_created", "Batches accepted and charged")
REPLAYS = Counter("videobatch_idempotent_replays", "Creates answered as idempotent replays")
CREDITS_CHARGED = Counter("videobatch_credits_charged", "Credits charged for batches")
CREDITS_REFUNDED = Counter("videobatch_credits_refunded", "Credits refunded for tasks")
LEASE_EXPIRIES = Counter(
    "videobatch_lease_expiries", "Task leases that ran out before the worker reported"
)

_PENDING = "videobatch.metrics.pending"


def count_after_commit(session: Session, counter: Counter, amount: float = 1) -> None:
    """Add ``amount`` to ``counter`` once ``session``'s transaction commits (never on rollback)."""
    session.info.setdefault(_PENDING, []).append((counter, amount))


@event.listens_for(Session, "after_commit")
def _apply_pending(session: Session) -> None:
    for counter, amount in session.info.pop(_PENDING, []):
        counter.inc(amount)


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


def record_submission(idempotent_replay: bool) -> None:
    """Count one answered create: a new batch or a replay."""
    (REPLAYS if idempotent_replay else BATCHES_CREATED).inc()


class QueueCollector(Collector):
    """Task gauges read from the database when Prometheus scrapes."""

    def __init__(self, database: Database, clock: Callable[[], datetime] = utcnow) -> None:
        self._database = database
        self._clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("videobatch_database_up", "Whether the queue gauges could be read")
        try:
            by_status, ready, oldest_ready, lapsed = self._read()
        except SQLAlchemyError as error:
            log.warning("queue gauges unavailable: %s", type(error).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        tasks = GaugeMetricFamily("videobatch_tasks", "Tasks by status", labels=["status"])
        for status in TaskStatus:
            tasks.add_metric([status.value], by_status.get(status.value, 0))
        yield tasks
        yield GaugeMetricFamily(
            "videobatch_queue_depth", "Queued tasks ready to be claimed now", value=ready
        )
        age = (self._clock() - oldest_ready).total_seconds() if oldest_ready else 0.0
        yield GaugeMetricFamily(
            "videobatch_oldest_queued_task_age_seconds",
            "How long the oldest ready task has waited to be claimed",
            value=max(age, 0.0),
        )
        yield GaugeMetricFamily(
            "videobatch_leases_lapsed",
            "Tasks still processing whose lease has run out (awaiting reclaim)",
            value=lapsed,
        )

    def _read(self) -> tuple[dict[str, int], int, datetime | None, int]:
        now = self._clock()
        queued_ready = (VideoTask.status == TaskStatus.QUEUED.value) & (VideoTask.run_after <= now)
        with self._database.transaction() as session:
            by_status = dict(
                session.execute(
                    select(VideoTask.status, func.count()).group_by(VideoTask.status)
                ).all()
            )
            ready, oldest_ready = session.execute(
                select(func.count(), func.min(VideoTask.run_after)).where(queued_ready)
            ).one()
            lapsed = session.execute(
                select(func.count()).where(
                    VideoTask.status == TaskStatus.PROCESSING.value,
                    VideoTask.lease_expires_at < now,
                )
            ).scalar_one()
        if oldest_ready is not None and oldest_ready.tzinfo is None:
            # min() over SQLite's zone-less text comes back without the column type's zone.
            oldest_ready = oldest_ready.replace(tzinfo=now.tzinfo)
        return by_status, ready, oldest_ready, lapsed


def render_metrics(database: Database, multiproc_dir: str) -> bytes:
    """The Prometheus text page: process metrics (summed over gunicorn workers) and queue gauges."""
    if multiproc_dir:
        process_registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(process_registry, path=multiproc_dir)
    else:
        process_registry = REGISTRY
    queue_registry = CollectorRegistry()
    queue_registry.register(QueueCollector(database))
    return generate_latest(process_registry) + generate_latest(queue_registry)


def register_request_metrics(app: Flask) -> None:
    """Count and time every request by its route pattern (never the raw path: ids are unbounded)."""

    @app.before_request
    def start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def observe(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule else "unmatched"
        REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        started = g.get("metrics_started")
        if started is not None:
            REQUEST_DURATION.labels(request.method, route).observe(time.perf_counter() - started)
        return response
