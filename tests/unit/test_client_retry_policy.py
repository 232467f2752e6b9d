"""VideoBatchClient's retry policy, against canned answers (no server)."""

from __future__ import annotations

import json

import pytest
import requests
from requests.adapters import BaseAdapter

from videobatch.client import (
    IdempotencyKeyReused,
    InsufficientCredits,
    RateLimited,
    ServerError,
    TransportError,
    VideoBatchClient,
)

CREATED = {"ok": True, "batch_id": "b1", "idempotent_replay": True}


class CannedAdapter(BaseAdapter):
    """Answers each request with the next canned (status, body) and records what was sent."""

    def __init__(self, answers: list) -> None:
        super().__init__()
        self.answers = list(answers)
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request, **kwargs):
        self.sent.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, body, headers = (*answer, {})[:3]
        response = requests.Response()
        response.status_code = status
        response._content = json.dumps(body).encode()
        response.headers.update({"Content-Type": "application/json", **headers})
        response.request = request
        return response

    def close(self):
        pass


def client_with(answers: list, **options) -> tuple[VideoBatchClient, CannedAdapter]:
    adapter = CannedAdapter(answers)
    session = requests.Session()
    session.mount("http://", adapter)
    client = VideoBatchClient(
        "http://api.test", "vb_key", session=session, backoff_initial=0.001, **options
    )
    return client, adapter


def problem(status: int, code: str, **extra) -> tuple[int, dict]:
    return status, {"ok": False, "status": status, "code": code, "detail": code, **extra}


def test_retries_reuse_the_same_request_id():
    client, adapter = client_with(
        [
            requests.ConnectionError("reset"),
            requests.ReadTimeout("slow"),
            problem(409, "request_in_progress"),
            problem(503, "service_unavailable"),
            (200, CREATED),
        ]
    )
    assert client.create_batch([{"prompt": "a"}]) == CREATED
    request_ids = {request.headers["x-request-id"] for request in adapter.sent}
    assert len(adapter.sent) == 5
    assert len(request_ids) == 1
    assert next(iter(request_ids)).startswith("vbpy-")


def test_each_create_gets_its_own_request_id_unless_given():
    client, adapter = client_with([(201, CREATED), (201, CREATED), (200, CREATED)])
    client.create_batch([{"prompt": "a"}])
    client.create_batch([{"prompt": "a"}])
    client.create_batch([{"prompt": "a"}], request_id="mine")
    ids = [request.headers["x-request-id"] for request in adapter.sent]
    assert ids[0] != ids[1] and ids[2] == "mine"


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (
            problem(402, "insufficient_credits", required_credits=20, available_credits=5),
            InsufficientCredits,
        ),
        (problem(422, "idempotency_key_reused"), IdempotencyKeyReused),
    ],
)
def test_client_errors_are_raised_at_once(answer, error):
    client, adapter = client_with([answer, (201, CREATED)])
    with pytest.raises(error):
        client.create_batch([{"prompt": "a"}])
    assert len(adapter.sent) == 1


def test_gives_up_after_max_attempts_with_the_last_error():
    client, adapter = client_with([problem(500, "internal_error")] * 3, max_attempts=3)
    with pytest.raises(ServerError):
        client.get_batch("b1")
    assert len(adapter.sent) == 3
    client, _ = client_with([requests.ConnectionError("down")] * 2, max_attempts=2)
    with pytest.raises(TransportError):
        client.get_batch("b1")


def test_rate_limit_is_retried_and_typed():
    client, adapter = client_with(
        [(*problem(429, "rate_limited"), {"Retry-After": "0"}), (200, CREATED)]
    )
    assert client.get_batch("b1") == CREATED
    assert len(adapter.sent) == 2
    client, _ = client_with([problem(429, "rate_limited")], max_attempts=1)
    with pytest.raises(RateLimited):
        client.get_batch("b1")
