"""The logs of a whole flow hold no API key, no worker secret and no prompt text.

A gunicorn of its own serves a create, a replay, a reused request id, bad input, bad
credentials and a worker's claim, heartbeat, complete and fail; then every line it logged
(gunicorn's and the app's) is read back.
"""

from __future__ import annotations

import json
import secrets
import uuid
from pathlib import Path

import pytest
import requests

from tests.conftest import (
    TEST_PEPPER,
    TEST_SECRET,
    server_env,
    start_gunicorn,
    stop_process,
)
from tests.factories import make_account

pytestmark = pytest.mark.services

PROMPTS = [f"LEAKCHECK {name} a lighthouse in a storm" for name in ("alpha", "beta", "gamma")]
WRONG_KEY = "vb_" + secrets.token_urlsafe(30)
WRONG_SECRET = "wrong-" + secrets.token_urlsafe(16)


def run_flow(url: str, api_key: str) -> None:
    create = f"{url}/api/enterprise/video-batch"
    headers = {"x-api-key": api_key, "x-request-id": f"leak-{uuid.uuid4()}"}
    traced = {**headers, "X-Correlation-Id": "leak-corr-1"}
    body = {"items": [{"prompt": PROMPTS[0], "negative_prompt": PROMPTS[0]}, {"prompt": "two"}]}

    first = requests.post(create, json=body, headers=traced, timeout=30)
    assert first.status_code == 201, first.text
    assert first.headers["X-Correlation-Id"] == "leak-corr-1"
    assert requests.post(create, json=body, headers=headers, timeout=30).status_code == 200
    reused = {"items": [{"prompt": PROMPTS[1]}]}
    assert requests.post(create, json=reused, headers=headers, timeout=30).status_code == 422
    too_long = {"items": [{"prompt": PROMPTS[2] * 200, "colour": PROMPTS[2]}]}
    bad = {"x-api-key": api_key, "x-request-id": "leak-bad"}
    assert requests.post(create, json=too_long, headers=bad, timeout=30).status_code == 400
    not_json = f'{{"items": [{{"prompt": "{PROMPTS[2]}"'.encode()
    assert requests.post(create, data=not_json, headers=bad, timeout=30).status_code == 400
    for credentials in ({"x-api-key": WRONG_KEY}, {"Authorization": f"Bearer {WRONG_KEY}"}):
        response = requests.post(create, json=body, headers={**credentials, "x-request-id": "x"})
        assert response.status_code == 401

    internal = f"{url}/api/internal"
    wrong = requests.post(
        f"{internal}/tasks/claim", json={}, headers={"x-internal-secret": WRONG_SECRET}, timeout=30
    )
    assert wrong.status_code == 401
    worker = {"Authorization": f"Bearer {TEST_SECRET}"}
    claimed = requests.post(
        f"{internal}/tasks/claim",
        json={"worker_id": "leak-worker", "max_tasks": 2, "lease_seconds": 60},
        headers=worker,
        timeout=30,
    )
    assert claimed.status_code == 200, claimed.text
    done, failing = claimed.json()["tasks"]
    for task, verb, report in (
        (done, "heartbeat", {"lease_seconds": 60}),
        (done, "complete", {"video_url": "https://cdn.example.com/v.mp4"}),
        (failing, "fail", {"error_code": "gpu_oom", "error_message": "oom", "retryable": False}),
    ):
        response = requests.post(
            f"{internal}/tasks/{task['task_id']}/{verb}",
            json={"lease_token": task["lease_token"], **report},
            headers=worker,
            timeout=30,
        )
        assert response.status_code == 200, response.text


def test_a_full_flow_logs_no_secret_and_no_prompt(pg_app, postgres_url, redis_url):
    env = server_env(postgres_url, redis_url, GUNICORN_ACCESS_LOG="1")  # check both log lines
    url, process = start_gunicorn(env, workers=2, threads=4)
    try:
        account = make_account(pg_app)
        run_flow(url, account.api_key)
    finally:
        output = Path(process.log_path).read_text()  # read before stop_process removes it
        stop_process(process)

    for secret in (account.api_key, WRONG_KEY, TEST_SECRET, WRONG_SECRET, TEST_PEPPER, *PROMPTS):
        assert secret not in output, f"{secret[:12]}... appears in the logs"
    assert "LEAKCHECK" not in output

    records = [json.loads(line) for line in output.splitlines() if line.strip()]
    traced = [record for record in records if record.get("correlation_id") == "leak-corr-1"]
    assert {record["logger"] for record in traced} == {"videobatch.request", "gunicorn.access"}
    request_line = next(record for record in traced if record["logger"] == "videobatch.request")
    assert request_line["account_id"] == str(account.account_id)
    assert request_line["route"] == "/api/enterprise/video-batch"
    assert request_line["status"] == 201
    assert request_line["duration_ms"] > 0
