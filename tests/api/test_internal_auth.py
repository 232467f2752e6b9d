"""The internal API's door: the worker secret, bad input and unknown tasks (SPEC 5, 7)."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import TEST_SECRET, base_config
from tests.factories import make_account
from tests.worker_api import SECRET_HEADERS, InternalApi, create_batch

ENDPOINTS = [
    "/api/internal/tasks/claim",
    f"/api/internal/tasks/{uuid.uuid4()}/heartbeat",
    f"/api/internal/tasks/{uuid.uuid4()}/complete",
    f"/api/internal/tasks/{uuid.uuid4()}/fail",
    "/api/internal/worker/run-once",
]


@pytest.mark.parametrize("path", ENDPOINTS)
def test_missing_secret_is_401(client, path):
    response = client.post(path, json={})
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "invalid_worker_secret"


@pytest.mark.parametrize(
    "headers",
    [
        {"x-internal-secret": "wrong"},
        {"x-internal-secret": TEST_SECRET + "x"},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TEST_SECRET}"},
    ],
)
def test_wrong_secret_is_401(client, headers):
    response = client.post("/api/internal/tasks/claim", json={}, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["code"] == "invalid_worker_secret"


def test_secret_as_bearer_token_is_accepted(client):
    response = client.post(
        "/api/internal/tasks/claim", json={}, headers={"Authorization": f"Bearer {TEST_SECRET}"}
    )
    assert response.status_code == 200
    assert response.get_json() == {"ok": True, "tasks": []}


def test_internal_api_without_configured_secret_is_503(sqlite_url):
    from videobatch.app import create_app

    app = create_app(base_config(database_url=sqlite_url, internal_worker_secret=""))
    client = app.test_client()
    for headers in ({}, {"x-internal-secret": ""}, {"x-internal-secret": "anything"}):
        response = client.post("/api/internal/tasks/claim", json={}, headers=headers)
        assert response.status_code == 503
        assert response.get_json()["code"] == "internal_api_disabled"
    app.extensions["videobatch.db"].dispose()


@pytest.mark.parametrize(
    "body",
    [
        {"max_tasks": 0},
        {"max_tasks": 101},
        {"max_tasks": "5"},
        {"max_tasks": True},
        {"max_tasks": 1.5},
        {"lease_seconds": 0},
        {"lease_seconds": 3601},
        {"worker_id": ""},
        {"worker_id": "x" * 129},
        {"unknown": 1},
        [],
        "claim",
    ],
)
def test_bad_claim_body_is_400(client, body):
    response = client.post("/api/internal/tasks/claim", json=body, headers=SECRET_HEADERS)
    assert response.status_code == 400
    assert response.get_json()["code"] == "validation_error"


def test_claim_body_that_is_not_json_is_400(client):
    response = client.post(
        "/api/internal/tasks/claim",
        data="{not json",
        content_type="application/json",
        headers=SECRET_HEADERS,
    )
    assert response.status_code == 400
    assert response.get_json()["code"] == "invalid_json"


@pytest.mark.parametrize(
    ("verb", "body"),
    [
        ("complete", {"lease_token": "t"}),
        ("complete", {"video_url": "https://x.example/v.mp4"}),
        ("complete", {"lease_token": "t", "video_url": "not a url"}),
        ("complete", {"lease_token": "t", "video_url": "ftp://x.example/v.mp4"}),
        ("complete", {"lease_token": "", "video_url": "https://x.example/v.mp4"}),
        ("fail", {"lease_token": "t"}),
        ("fail", {"lease_token": "t", "error_code": "Has Spaces"}),
        ("fail", {"lease_token": "t", "error_code": "x", "retryable": "yes please"}),
        ("fail", {"lease_token": "t", "error_code": "x", "error_message": "m" * 2001}),
        ("heartbeat", {}),
        ("heartbeat", {"lease_token": "t", "lease_seconds": 0}),
    ],
)
def test_bad_report_body_is_400(app, client, verb, body):
    account = make_account(app)
    create_batch(client, account.api_key)
    task = InternalApi(client).claim()[0]
    response = client.post(
        f"/api/internal/tasks/{task['task_id']}/{verb}", json=body, headers=SECRET_HEADERS
    )
    assert response.status_code == 400
    assert response.get_json()["code"] == "validation_error"


@pytest.mark.parametrize("verb", ["heartbeat", "complete", "fail"])
@pytest.mark.parametrize("task_id", [str(uuid.uuid4()), "not-a-uuid", "123", "%00"])
def test_unknown_or_malformed_task_id_is_404(client, verb, task_id):
    if verb == "heartbeat":
        body = {"lease_token": "t"}
    elif verb == "fail":
        body = {"lease_token": "t", "error_code": "x"}
    else:
        body = {"lease_token": "t", "video_url": "https://x.example/v.mp4"}
    response = client.post(
        f"/api/internal/tasks/{task_id}/{verb}", json=body, headers=SECRET_HEADERS
    )
    assert response.status_code == 404
    assert response.get_json()["code"] == "not_found"


def test_run_once_accepts_an_empty_body_and_rejects_a_bad_one(client):
    assert client.post("/api/internal/worker/run-once", headers=SECRET_HEADERS).status_code == 200
    response = client.post(
        "/api/internal/worker/run-once", json={"max_tasks": 0}, headers=SECRET_HEADERS
    )
    assert response.status_code == 400
