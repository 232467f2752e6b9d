"""A Python client for the videobatch API that makes safe retries the default.

    from videobatch.client import VideoBatchClient

    client = VideoBatchClient("http://127.0.0.1:8000", api_key="vb_...")
    batch = client.create_batch([{"prompt": "A city at sunset"}])
    done = client.wait(batch["batch_id"])

Every create carries a request id (generated unless given). Timeouts, dropped connections, 409
(the same request still in flight), 429 and 5xx are retried with exponential backoff and jitter,
and a retried create sends the *same* request id, so the server answers it with the batch it
already made: one batch, one charge, however often the network fails. Other 4xx answers raise
the typed errors below at once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

ENDED_STATUSES = frozenset({"completed", "failed", "partially_completed", "cancelled"})


class VideoBatchError(Exception):
    """Anything the client could not get done."""


class TransportError(VideoBatchError):
    """The server could not be reached, or did not answer in time (after the retries)."""


class APIError(VideoBatchError):
    """The server answered with an error (problem+json); ``code`` is stable."""

    def __init__(self, status: int, body: dict[str, Any], retry_after: float | None = None):
        self.status = status
        self.body = body
        self.code: str = body.get("code", "http_error")
        self.detail: str = body.get("detail", "")
        self.retry_after = retry_after
        super().__init__(f"{status} {self.code}: {self.detail}")


class InvalidRequest(APIError):
    """400: the body, a parameter or the request id is not acceptable; see ``errors``."""

    @property
    def errors(self) -> dict[str, Any]:
        return self.body.get("errors", {})


class AuthenticationFailed(APIError):
    """401: the API key is missing, unknown or revoked."""


class InsufficientCredits(APIError):
    """402: the batch costs more than the balance; nothing was charged."""

    @property
    def required_credits(self) -> int:
        return self.body["required_credits"]

    @property
    def available_credits(self) -> int:
        return self.body["available_credits"]


class NotFound(APIError):
    """404: no such batch (or not this account's)."""


class RequestInProgress(APIError):
    """409: the same request id is still being processed (retried automatically)."""


class PayloadTooLarge(APIError):
    """413: the body is over the server's limit."""


class IdempotencyKeyReused(APIError):
    """422: this request id was already used with a different payload."""


class RateLimited(APIError):
    """429: too many requests (retried automatically, honouring Retry-After)."""


class ServerError(APIError):
    """5xx (retried automatically)."""


ERRORS_BY_CODE: dict[str, type[APIError]] = {
    "api_key_required": AuthenticationFailed,
    "invalid_api_key": AuthenticationFailed,
    "insufficient_credits": InsufficientCredits,
    "not_found": NotFound,
    "request_in_progress": RequestInProgress,
    "payload_too_large": PayloadTooLarge,
    "idempotency_key_reused": IdempotencyKeyReused,
    "rate_limited": RateLimited,
}
ERRORS_BY_STATUS: dict[int, type[APIError]] = {
    400: InvalidRequest,
    401: AuthenticationFailed,
    402: InsufficientCredits,
    404: NotFound,
    409: RequestInProgress,
    413: PayloadTooLarge,
    422: IdempotencyKeyReused,
    429: RateLimited,
}


class WaitTimeout(VideoBatchError):
    """``wait`` gave up before the batch ended; ``batch`` is its last state."""

    def __init__(self, batch: dict[str, Any]):
        self.batch = batch
        super().__init__(f"batch {batch['batch_id']} still {batch['status']}")


def _retryable(error: BaseException) -> bool:
    if isinstance(error, TransportError):
        return True
    return isinstance(error, APIError) and (error.status in (409, 429) or error.status >= 500)


def _error_for(response: requests.Response) -> APIError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    body.setdefault("detail", response.reason or "")
    retry_after = None
    header = response.headers.get("Retry-After", "")
    if header.isdigit():
        retry_after = float(header)
    status = response.status_code
    if status >= 500:
        kind: type[APIError] = ServerError
    else:
        kind = ERRORS_BY_CODE.get(body.get("code", ""), ERRORS_BY_STATUS.get(status, APIError))
    return kind(status, body, retry_after)


class _Backoff:
    """Exponential backoff with jitter that never waits less than the server's Retry-After."""

    def __init__(self, initial: float, maximum: float) -> None:
        self._exponential = wait_exponential(multiplier=initial, max=maximum) + wait_random(
            0, initial
        )

    def __call__(self, state: RetryCallState) -> float:
        delay = self._exponential(state)
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, APIError) and error.retry_after:
            delay = max(delay, error.retry_after)
        return delay


class VideoBatchClient:
    """The videobatch API, with retries that can never create a second batch."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        max_attempts: int = 6,
        backoff_initial: float = 0.5,
        backoff_max: float = 20.0,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = session or requests.Session()
        self._session.headers.update({"x-api-key": api_key, "Accept": "application/json"})
        self._retrying = Retrying(
            stop=stop_after_attempt(max_attempts),
            wait=_Backoff(backoff_initial, backoff_max),
            retry=retry_if_exception(_retryable),
            reraise=True,
        )

    # -- the endpoints -------------------------------------------------------------------------

    def create_batch(
        self,
        items: list[dict[str, Any]],
        metadata: dict[str, str] | None = None,
        *,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """Submit a batch; retries reuse one request id, so at most one batch is ever charged.

        The answer has ``idempotent_replay`` true when a retry found the batch already made.
        """
        request_id = request_id or f"vbpy-{uuid.uuid4()}"
        body: dict[str, Any] = {"items": items}
        if metadata:
            body["metadata"] = metadata
        return self._call(
            "POST", "/api/enterprise/video-batch", json=body, headers={"x-request-id": request_id}
        )

    def get_batch(self, batch_id: str) -> dict[str, Any]:
        """The batch with its counts and tasks."""
        return self._call("GET", f"/api/enterprise/video-batch/{batch_id}")

    def list_batches(
        self, *, limit: int = 20, starting_after: str | None = None, status: str | None = None
    ) -> dict[str, Any]:
        """One page of batches, newest first: ``{"data": [...], "has_more": bool}``."""
        params: dict[str, Any] = {"limit": limit}
        if starting_after:
            params["starting_after"] = starting_after
        if status:
            params["status"] = status
        return self._call("GET", "/api/enterprise/video-batch", params=params)

    def iter_batches(self, *, status: str | None = None, page_size: int = 100) -> Iterator[dict]:
        """Every batch, newest first, fetching pages as needed."""
        cursor = None
        while True:
            page = self.list_batches(limit=page_size, starting_after=cursor, status=status)
            yield from page["data"]
            if not page["has_more"] or not page["data"]:
                return
            cursor = page["data"][-1]["batch_id"]

    def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        """Cancel the batch (idempotent): queued tasks are cancelled and refunded."""
        return self._call("POST", f"/api/enterprise/video-batch/{batch_id}/cancel")

    def credits(self, *, limit: int = 20, starting_after: str | None = None) -> dict[str, Any]:
        """The balance and a page of the ledger, newest first."""
        params: dict[str, Any] = {"limit": limit}
        if starting_after:
            params["starting_after"] = starting_after
        return self._call("GET", "/api/enterprise/credits", params=params)

    def wait(
        self,
        batch_id: str,
        *,
        timeout: float | None = None,
        poll_initial: float = 0.5,
        poll_max: float = 10.0,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the batch ends and return it; the interval doubles up to ``poll_max``.

        ``on_progress`` is called with every state read; ``WaitTimeout`` is raised after
        ``timeout`` seconds (never, by default).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = poll_initial
        while True:
            batch = self.get_batch(batch_id)
            if on_progress is not None:
                on_progress(batch)
            if batch["status"] in ENDED_STATUSES:
                return batch
            if deadline is not None and time.monotonic() + delay > deadline:
                raise WaitTimeout(batch)
            time.sleep(delay)
            delay = min(delay * 2, poll_max)

    # -- the transport -------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return self._retrying.copy()(self._send, method, path, **kwargs)

    def _send(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._session.request(
                method, self.base_url + path, timeout=self.timeout, **kwargs
            )
        except (requests.ConnectionError, requests.Timeout) as error:
            raise TransportError(f"{method} {path}: {error}") from error
        if response.status_code >= 400:
            raise _error_for(response)
        try:
            return response.json()
        except ValueError as error:
            # A proxy's HTML page in a 2xx is as good as no answer: ask again.
            raise TransportError(f"{method} {path}: the answer is not JSON") from error
