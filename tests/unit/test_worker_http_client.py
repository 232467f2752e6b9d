"""The worker's HTTP client: which internal-API answers it retries, and which it raises at once."""

from __future__ import annotations

import json

import pytest
import requests

from videobatch.worker.clients import HttpTaskClient, LeaseLostError, TaskApiError


class ScriptedSession:
    """Answers each POST with the next scripted outcome (a status and body, or an exception)."""

    def __init__(self, *outcomes) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def post(self, url, json=None, timeout=None):
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        status, body = outcome
        response = requests.Response()
        response.status_code = status
        response._content = _encode(body)
        return response


def _encode(body) -> bytes:
    return json.dumps(body).encode()


def client_with(session: ScriptedSession, attempts: int = 4) -> HttpTaskClient:
    client = HttpTaskClient("http://127.0.0.1:9", "secret", worker_id="w1", attempts=attempts)
    client._retrying.sleep = lambda seconds: None  # no real waiting in a unit test
    client._session = lambda: session
    return client


def test_connection_errors_and_server_errors_are_retried_until_an_answer():
    session = ScriptedSession(
        requests.ConnectionError("refused"),
        (503, {"code": "service_unavailable"}),
        (429, {"code": "rate_limited"}),
        (200, {"tasks": []}),
    )
    assert client_with(session).claim(max_tasks=1, lease_seconds=30) == []
    assert session.calls == 4


def test_retries_stop_after_the_last_attempt_with_the_last_error():
    session = ScriptedSession(*[(502, {"code": "bad_gateway"})] * 3)
    with pytest.raises(TaskApiError) as raised:
        client_with(session, attempts=3).claim(max_tasks=1, lease_seconds=30)
    assert raised.value.status == 502
    assert session.calls == 3


@pytest.mark.parametrize(
    ("status", "code"),
    [(401, "invalid_worker_secret"), (400, "validation_error"), (503, "internal_api_disabled")],
)
def test_answers_a_retry_cannot_fix_are_raised_at_once(status, code):
    session = ScriptedSession((status, {"code": code, "detail": "no"}))
    with pytest.raises(TaskApiError) as raised:
        client_with(session).claim(max_tasks=1, lease_seconds=30)
    assert (raised.value.status, raised.value.code) == (status, code)
    assert session.calls == 1


def test_lease_lost_is_raised_at_once():
    from videobatch.worker.clients import Lease
    from videobatch.worker.providers import GenerationTask

    session = ScriptedSession((409, {"code": "lease_lost", "detail": "taken over"}))
    task = GenerationTask(
        task_id="t", batch_id="b", position=0, prompt="p", params={}, attempt=1, max_attempts=3
    )
    with pytest.raises(LeaseLostError):
        client_with(session).complete(Lease(task, "token", "later"), "https://v.example/1.mp4")
    assert session.calls == 1
