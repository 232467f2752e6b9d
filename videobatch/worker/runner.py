"""The worker: claim tasks, run the provider on them, keep their leases alive, report.

``Worker`` is the loop behind ``videobatch worker`` (over HTTP) and the embedded worker thread
of ``videobatch serve`` (in-process); ``run_once`` is the one-shot used by
``POST /api/internal/worker/run-once``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from videobatch.config import Config
from videobatch.worker.clients import Lease, LeaseLostError, TaskApiError, TaskClient
from videobatch.worker.providers import GenerationResult, ProviderError, VideoProvider

log = logging.getLogger(__name__)

# Outcomes of one attempt, as logged and as run-once reports them.
COMPLETED, REQUEUED, FAILED, CANCELLED, LEASE_LOST = (
    "completed",
    "requeued",
    "failed",
    "cancelled",
    "lease_lost",
)
_BY_STATUS = {"completed": COMPLETED, "queued": REQUEUED, "failed": FAILED, "cancelled": CANCELLED}
RUN_ONCE_OUTCOMES = (COMPLETED, REQUEUED, FAILED, CANCELLED, LEASE_LOST)


@dataclass
class Running:
    """A task this worker is working on, and why it might have to stop."""

    lease: Lease
    lease_lost: bool = False
    cancel_requested: bool = False
    shutting_down: bool = False

    def stop(self) -> None:
        self.lease.task.stop_requested.set()


@dataclass(frozen=True)
class AttemptResult:
    lease: Lease
    outcome: str
    status: str | None = None
    video_url: str | None = None
    error_code: str | None = None


class HeartbeatLoop:
    """One thread renewing the lease of every running task every ``interval_s``."""

    def __init__(self, client: TaskClient, lease_seconds: int) -> None:
        self.client = client
        self.lease_seconds = lease_seconds
        self.interval_s = max(lease_seconds / 3, 0.2)
        self._running: dict[uuid.UUID, Running] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    def start(self) -> HeartbeatLoop:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def add(self, running: Running) -> None:
        with self._lock:
            self._running[running.lease.task.task_id] = running

    def remove(self, running: Running) -> None:
        with self._lock:
            self._running.pop(running.lease.task.task_id, None)

    def snapshot(self) -> list[Running]:
        with self._lock:
            return list(self._running.values())

    def _loop(self) -> None:
        while not self._stopped.wait(self.interval_s):
            for running in self.snapshot():
                self._beat(running)

    def _beat(self, running: Running) -> None:
        task_id = running.lease.task.task_id
        try:
            cancel_requested = self.client.heartbeat(running.lease, self.lease_seconds)
        except LeaseLostError:
            log.warning("task %s: lease lost; abandoning it", task_id)
            running.lease_lost = True
            running.stop()
            return
        except Exception as error:  # the lease may still hold: try again next beat
            log.warning("task %s: heartbeat failed: %s", task_id, error)
            return
        if cancel_requested and not running.cancel_requested:
            log.info("task %s: batch cancelled; stopping it", task_id)
            running.cancel_requested = True
            running.stop()


def execute(client: TaskClient, provider: VideoProvider, running: Running) -> AttemptResult:
    """Run one claimed task through the provider and report the result under its lease."""
    lease = running.lease
    task = lease.task
    result: GenerationResult | None = None
    failure = ProviderError("provider_error", f"Provider {provider.name} returned no video URL")
    try:
        result = provider.generate(task)
        if not getattr(result, "video_url", None):
            result = None
    except ProviderError as error:
        failure = error
    except Exception as error:
        log.exception("task %s: provider %s raised", task.task_id, provider.name)
        failure = ProviderError("provider_error", f"{type(error).__name__}: {error}")
    if running.lease_lost:
        return AttemptResult(lease, LEASE_LOST)
    try:
        if result is not None:
            report = client.complete(lease, result.video_url)
            return AttemptResult(lease, COMPLETED, report.status, video_url=result.video_url)
        if running.cancel_requested:
            failure = ProviderError("batch_cancelled", "The batch was cancelled")
        elif running.shutting_down and task.stop_requested.is_set():
            failure = ProviderError("worker_shutdown", "The worker stopped before the task ended")
        report = client.fail(lease, failure.code, failure.message, failure.retryable)
    except LeaseLostError:
        return AttemptResult(lease, LEASE_LOST)
    return AttemptResult(
        lease, _BY_STATUS.get(report.status, report.status), report.status, error_code=failure.code
    )


def attempt(client: TaskClient, provider: VideoProvider, running: Running) -> AttemptResult:
    """``execute``, where a report that could not be made is an outcome, not an exception."""
    try:
        return execute(client, provider, running)
    except Exception as error:  # the report itself failed: the lease will expire and retry it
        log.error("task %s: could not report: %s", running.lease.task.task_id, error)
        return AttemptResult(running.lease, "report_failed")


def _log_result(result: AttemptResult) -> None:
    task = result.lease.task
    log.info(
        "task %s (batch %s) attempt %d/%d: %s%s",
        task.task_id,
        task.batch_id,
        task.attempt,
        task.max_attempts,
        result.outcome,
        f" ({result.error_code})" if result.error_code else "",
    )


def run_once(
    client: TaskClient, provider: VideoProvider, *, max_tasks: int, lease_seconds: int = 120
) -> list[AttemptResult]:
    """Claim up to ``max_tasks`` ready tasks, run them (a few at a time) and report each."""
    leases = client.claim(max_tasks, lease_seconds)
    if not leases:
        return []
    heartbeats = HeartbeatLoop(client, lease_seconds).start()
    try:
        with ThreadPoolExecutor(max_workers=min(len(leases), 8)) as pool:
            return list(
                pool.map(lambda lease: _run_tracked(client, provider, heartbeats, lease), leases)
            )
    finally:
        heartbeats.close()


def _run_tracked(
    client: TaskClient, provider: VideoProvider, heartbeats: HeartbeatLoop, lease: Lease
) -> AttemptResult:
    running = Running(lease)
    heartbeats.add(running)
    try:
        result = attempt(client, provider, running)
    finally:
        heartbeats.remove(running)
    _log_result(result)
    return result


@dataclass
class WorkerStats:
    outcomes: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


class Worker:
    """Keeps up to ``concurrency`` tasks running until stopped.

    ``stop()`` stops claiming at once and lets the running tasks finish for up to
    ``drain_timeout_s``; tasks still running then are stopped and released (reported as a
    retryable ``worker_shutdown``), so another worker takes them over without waiting for the
    lease to run out. ``run()`` returns when nothing is held any more.
    """

    def __init__(
        self,
        client: TaskClient,
        provider: VideoProvider,
        *,
        concurrency: int = 1,
        lease_seconds: int = 60,
        poll_interval_s: float = 1.0,
        drain_timeout_s: float = 30.0,
        name: str = "worker",
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.client = client
        self.provider = provider
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.poll_interval_s = poll_interval_s
        self.drain_timeout_s = drain_timeout_s
        self.name = name
        self.stats = WorkerStats()
        self.error: Exception | None = None
        self._stopping = threading.Event()
        self._urgent = threading.Event()

    def stop(self, *, immediate: bool = False) -> None:
        """Stop claiming; with ``immediate``, release running tasks without waiting."""
        self._stopping.set()
        if immediate:
            self._urgent.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def run(self) -> None:
        heartbeats = HeartbeatLoop(self.client, self.lease_seconds).start()
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix=self.name)
        in_flight: dict[Future[AttemptResult], Running] = {}
        log.info(
            "%s started: provider %s, concurrency %d",
            self.name,
            self.provider.name,
            self.concurrency,
        )
        try:
            self._claim_loop(pool, heartbeats, in_flight)
            self._drain(heartbeats, in_flight)
        finally:
            pool.shutdown(wait=True)
            heartbeats.close()
        log.info("%s stopped: %s", self.name, self.stats.outcomes)

    def _claim_loop(
        self,
        pool: ThreadPoolExecutor,
        heartbeats: HeartbeatLoop,
        in_flight: dict[Future[AttemptResult], Running],
    ) -> None:
        idle_wait = self.poll_interval_s
        while not self.stopping:
            free = self.concurrency - len(in_flight)
            claimed: list[Lease] = []
            if free > 0:
                try:
                    claimed = self.client.claim(free, self.lease_seconds)
                    idle_wait = self.poll_interval_s
                except TaskApiError as error:
                    if error.fatal:
                        log.error("%s cannot claim: %s; stopping", self.name, error)
                        self.error = error
                        self.stop()
                        break
                    log.warning("%s: claim refused: %s", self.name, error)
                except Exception as error:
                    log.warning("%s: claim failed: %s", self.name, error)
                    idle_wait = min(idle_wait * 2, 30.0)
            for lease in claimed:
                running = Running(lease)
                heartbeats.add(running)
                in_flight[pool.submit(attempt, self.client, self.provider, running)] = running
            if claimed and len(in_flight) < self.concurrency:
                continue  # there was work: ask again at once for the free slots
            timeout = None if len(in_flight) >= self.concurrency else idle_wait
            self._collect(heartbeats, in_flight, timeout=timeout, wake=self._stopping)

    def _collect(
        self,
        heartbeats: HeartbeatLoop,
        in_flight: dict[Future[AttemptResult], Running],
        *,
        timeout: float | None,
        wake: threading.Event,
    ) -> None:
        """Wait until a task ends, ``timeout`` passes or ``wake`` is set; record what ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if in_flight:
                done, _ = wait(list(in_flight), timeout=0.1, return_when=FIRST_COMPLETED)
            else:
                wake.wait(0.1)
                done = set()
            for future in done:
                self._record(heartbeats, in_flight.pop(future), future)
            if done or wake.is_set() or (deadline is not None and time.monotonic() >= deadline):
                return

    def _record(
        self, heartbeats: HeartbeatLoop, running: Running, future: Future[AttemptResult]
    ) -> None:
        heartbeats.remove(running)
        result = future.result()
        self.stats.count(result.outcome)
        _log_result(result)

    def _drain(
        self, heartbeats: HeartbeatLoop, in_flight: dict[Future[AttemptResult], Running]
    ) -> None:
        if in_flight:
            log.info("%s draining %d running task(s)", self.name, len(in_flight))
        deadline = time.monotonic() + self.drain_timeout_s
        while in_flight and time.monotonic() < deadline and not self._urgent.is_set():
            self._collect(heartbeats, in_flight, timeout=0.5, wake=self._urgent)
        for running in in_flight.values():
            running.shutting_down = True
            running.stop()
        while in_flight:
            self._collect(heartbeats, in_flight, timeout=1.0, wake=threading.Event())


def install_signal_handlers(
    worker: Worker, signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT)
) -> None:
    """First SIGTERM/SIGINT: stop claiming and drain. A second one: release at once."""

    def handle(signum: int, _frame: Any) -> None:
        if worker.stopping:
            log.warning("%s: second signal; releasing running tasks now", worker.name)
            worker.stop(immediate=True)
        else:
            log.info(
                "%s: %s received; finishing running tasks", worker.name, signal.Signals(signum).name
            )
            worker.stop()

    for signum in signals:
        signal.signal(signum, handle)


def run_worker_process(
    config: Config,
    *,
    api_url: str,
    concurrency: int,
    lease_seconds: int,
    poll_interval_s: float,
    drain_timeout_s: float,
    worker_id: str | None = None,
) -> int:
    """The body of ``videobatch worker``: run until SIGTERM/SIGINT; the exit status."""
    from videobatch.worker.clients import HttpTaskClient
    from videobatch.worker.providers import load_provider

    if not config.internal_worker_secret:
        log.error("INTERNAL_WORKER_SECRET is not set: the worker cannot reach the internal API")
        return 2
    name = worker_id or f"{socket.gethostname()}:{os.getpid()}"
    worker = Worker(
        HttpTaskClient(api_url, config.internal_worker_secret, worker_id=name),
        load_provider(config),
        concurrency=concurrency,
        lease_seconds=lease_seconds,
        poll_interval_s=poll_interval_s,
        drain_timeout_s=drain_timeout_s,
        name=name,
    )
    install_signal_handlers(worker)
    log.info("worker %s claiming from %s", name, api_url)
    worker.run()
    return 1 if worker.error is not None else 0
