"""How a worker reaches the task queue: over HTTP (a worker process) or in-process (embedded).

Both speak the same four verbs as the internal API, so the runner does not care which it has.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import requests
from sqlalchemy.orm import Session
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from videobatch.config import Config
from videobatch.errors import LeaseLost
from videobatch.extensions import Database
from videobatch.services import tasks
from videobatch.worker.providers import GenerationTask

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Lease:
    """A claimed task and the token that proves this worker holds it."""

    task: GenerationTask
    lease_token: str
    lease_expires_at: str | datetime


@dataclass(frozen=True)
class Report:
    """What the queue says a task became after a report."""

    status: str
    batch_status: str | None = None


class LeaseLostError(Exception):
    """The task was taken over (or settled) by someone else: stop working on it."""


class TaskApiError(Exception):
    """The internal API answered with an error (``retryable`` tells whether to try again)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code

    @property
    def retryable(self) -> bool:
        """Overload or a server error: the same request may succeed shortly."""
        if self.code == "internal_api_disabled":
            return False
        return self.status == 429 or self.status >= 500

    @property
    def fatal(self) -> bool:
        """The worker cannot go on (wrong secret, internal API off)."""
        return self.status in (401, 403, 503) and self.code != "service_unavailable"


class TaskClient(Protocol):
    def claim(self, max_tasks: int, lease_seconds: int) -> list[Lease]: ...

    def heartbeat(self, lease: Lease, lease_seconds: int) -> bool:
        """Extend the lease; True when the task's batch was cancelled."""
        ...

    def complete(self, lease: Lease, video_url: str) -> Report: ...

    def fail(
        self, lease: Lease, error_code: str, error_message: str, retryable: bool
    ) -> Report: ...


def lease_from_claim(item: dict[str, Any]) -> Lease:
    return Lease(
        task=GenerationTask(
            task_id=uuid.UUID(str(item["task_id"])),
            batch_id=uuid.UUID(str(item["batch_id"])),
            position=item["position"],
            prompt=item["prompt"],
            params=item.get("params") or {},
            attempt=item["attempt"],
            max_attempts=item["max_attempts"],
        ),
        lease_token=item["lease_token"],
        lease_expires_at=item["lease_expires_at"],
    )


class HttpTaskClient:
    """The internal API over HTTP, authenticated with the worker secret.

    Connection errors, 429 and 5xx are retried with backoff: every report is safe to repeat
    (the same token replays), and a claim whose answer was lost only costs its tasks one lease.
    """

    def __init__(
        self,
        base_url: str,
        secret: str,
        *,
        worker_id: str,
        timeout: float = 10.0,
        attempts: int = 6,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/api/internal"
        self.worker_id = worker_id
        self._secret = secret
        self._timeout = timeout
        self._local = threading.local()  # a requests.Session per thread
        self._retrying = Retrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=0.2, max=5.0) + wait_random(0, 0.1),
            retry=retry_if_exception(_retryable),
            before_sleep=_log_retry,
            reraise=True,
        )

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["x-internal-secret"] = self._secret
            self._local.session = session
        return session

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._retrying(self._post_once, path, body)

    def _post_once(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._session().post(self.base_url + path, json=body, timeout=self._timeout)
        if response.status_code < 400:
            return response.json()
        problem = _problem(response)
        if response.status_code == 409 and problem.get("code") == "lease_lost":
            raise LeaseLostError(problem.get("detail", "lease lost"))
        raise TaskApiError(
            response.status_code,
            str(problem.get("code", "http_error")),
            str(problem.get("detail", response.reason)),
        )

    def claim(self, max_tasks: int, lease_seconds: int) -> list[Lease]:
        body = {"worker_id": self.worker_id, "max_tasks": max_tasks, "lease_seconds": lease_seconds}
        return [lease_from_claim(item) for item in self._post("/tasks/claim", body)["tasks"]]

    def heartbeat(self, lease: Lease, lease_seconds: int) -> bool:
        answer = self._post(
            f"/tasks/{lease.task.task_id}/heartbeat",
            {"lease_token": lease.lease_token, "lease_seconds": lease_seconds},
        )
        return bool(answer.get("cancel_requested"))

    def complete(self, lease: Lease, video_url: str) -> Report:
        answer = self._post(
            f"/tasks/{lease.task.task_id}/complete",
            {"lease_token": lease.lease_token, "video_url": video_url},
        )
        return Report(status=answer["status"], batch_status=answer.get("batch_status"))

    def fail(self, lease: Lease, error_code: str, error_message: str, retryable: bool) -> Report:
        answer = self._post(
            f"/tasks/{lease.task.task_id}/fail",
            {
                "lease_token": lease.lease_token,
                "error_code": error_code,
                "error_message": error_message[:2000],
                "retryable": retryable,
            },
        )
        return Report(status=answer["status"], batch_status=answer.get("batch_status"))


def _retryable(error: BaseException) -> bool:
    if isinstance(error, TaskApiError):
        return error.retryable
    return isinstance(error, requests.RequestException)


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    delay = state.next_action.sleep if state.next_action else 0.0
    log.warning("internal API call failed (%s); retrying in %.1fs", error, delay)


def _problem(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class ReapSchedule:
    """Runs the reaper at most once per ``interval_s`` in this process, from the claim path."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self._next = 0.0
        self._lock = threading.Lock()

    def due(self) -> bool:
        with self._lock:
            now = time.monotonic()
            if now < self._next:
                return False
            self._next = now + self.interval_s
            return True

    def reap_if_due(self, db: Database) -> None:
        """Settle expired leases nobody reclaimed; a failure here never fails the claim."""
        if not self.due():
            return
        try:
            with db.transaction() as session:
                report = tasks.reap_expired_leases(session)
        except Exception:
            log.exception("reaping expired leases failed; the next claim tries again")
            return
        if report.total:
            log.info(
                "reaped expired leases: %d requeued, %d failed, %d cancelled",
                report.requeued,
                report.failed,
                report.cancelled,
            )


class LocalTaskClient:
    """The task queue in this process's own database: for `videobatch serve` and run-once."""

    def __init__(
        self, db: Database, config: Config, *, worker_id: str, reaper: ReapSchedule | None = None
    ) -> None:
        self.db = db
        self.worker_id = worker_id
        self.policy = tasks.RetryPolicy(config.retry_base_delay_s, config.retry_max_delay_s)
        self.reaper = reaper or ReapSchedule()

    def claim(self, max_tasks: int, lease_seconds: int) -> list[Lease]:
        self.reaper.reap_if_due(self.db)
        with self.db.transaction() as session:
            claimed = tasks.claim_tasks(
                session, worker_id=self.worker_id, max_tasks=max_tasks, lease_seconds=lease_seconds
            )
        return [
            Lease(
                task=GenerationTask(
                    task_id=item.task_id,
                    batch_id=item.batch_id,
                    position=item.position,
                    prompt=item.prompt,
                    params=item.params,
                    attempt=item.attempt,
                    max_attempts=item.max_attempts,
                ),
                lease_token=item.lease_token,
                lease_expires_at=item.lease_expires_at,
            )
            for item in claimed
        ]

    @contextmanager
    def _report(self) -> Iterator[Session]:
        """A report's transaction, with a lost lease raised as the runner expects it."""
        try:
            with self.db.transaction() as session:
                yield session
        except LeaseLost as error:
            raise LeaseLostError(error.detail) from None

    def heartbeat(self, lease: Lease, lease_seconds: int) -> bool:
        with self._report() as session:
            renewal = tasks.renew_lease(
                session, lease.task.task_id, lease.lease_token, lease_seconds=lease_seconds
            )
        return renewal.cancel_requested

    def complete(self, lease: Lease, video_url: str) -> Report:
        with self._report() as session:
            outcome = tasks.complete_task(
                session, lease.task.task_id, lease.lease_token, video_url=video_url
            )
        return Report(status=outcome.status, batch_status=outcome.batch_status)

    def fail(self, lease: Lease, error_code: str, error_message: str, retryable: bool) -> Report:
        with self._report() as session:
            outcome = tasks.fail_task(
                session,
                lease.task.task_id,
                lease.lease_token,
                error_code=error_code,
                error_message=error_message[:2000],
                retryable=retryable,
                policy=self.policy,
            )
        return Report(status=outcome.status, batch_status=outcome.batch_status)
