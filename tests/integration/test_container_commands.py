"""The containers' commands, run by hand against the local PostgreSQL and Redis.

Each command is read from docker-compose.yml and run as the container would run it, in
production mode with the container's environment: `videobatch db upgrade` on an empty database,
`gunicorn wsgi:app -c gunicorn.conf.py` (two processes), and two `videobatch worker` processes
(as `--scale worker=2`). A batch then has to go from created to completed through all of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from tests.conftest import (
    ROOT,
    TEST_DATABASE_URL,
    TEST_PEPPER,
    TEST_SECRET,
    free_port,
    recreate_database,
    stop_process,
)
from tests.unit.test_deployment_files import SERVICES, expand

pytestmark = pytest.mark.services

BIN = Path(sys.executable).parent


def compose_command(service: str) -> list[str]:
    """The service's command from docker-compose.yml, with this virtualenv's executables."""
    command = [expand(argument) for argument in SERVICES[service]["command"]]
    return [str(BIN / command[0]), *command[1:]]


@pytest.fixture(scope="module")
def stack_database_url() -> Iterator[str]:
    """An empty database of its own, so the migration runs from nothing as on a first deploy."""
    url = make_url(TEST_DATABASE_URL)
    url = url.set(database=f"{url.database}_stack")
    recreate_database(url)
    yield url.render_as_string(hide_password=False)


def container_env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """What the compose file gives the app containers, pointed at the local services."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VIDEOBATCH_", "DATABASE_URL", "REDIS_URL", "PROMETHEUS_"))
    }
    env.update(
        VIDEOBATCH_ENV="production",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        INTERNAL_WORKER_SECRET=TEST_SECRET,
        API_KEY_PEPPER=TEST_PEPPER,
        SIMULATED_DELAY_MS="20",
        **extra,
    )
    return env


def start(command: list[str], env: dict[str, str], log_dir: Path, name: str) -> subprocess.Popen:
    with (log_dir / f"{name}.log").open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    process.output_path = log_dir / f"{name}.log"  # type: ignore[attr-defined]
    return process


def wait_for(url: str, process: subprocess.Popen, within_s: float = 30) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.output_path.read_text()[-3000:]
        try:
            answered = requests.get(url, timeout=1).status_code == 200
        except (requests.ConnectionError, requests.Timeout):
            answered = False  # still booting
        if answered:
            return
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {within_s} s")


def test_the_containers_commands_run_a_batch_to_completion(stack_database_url, redis_url, tmp_path):
    log_dir = tmp_path
    port = free_port()
    api_url = f"http://127.0.0.1:{port}"
    env = container_env(stack_database_url, redis_url)

    migrate = subprocess.run(
        compose_command("migrate"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr

    account = subprocess.run(
        [str(BIN / "videobatch"), "accounts", "create", "stack", "--credits", "100"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert account.returncode == 0, account.stderr
    api_key = json.loads(account.stdout.strip().splitlines()[-1])["api_key"]

    api = start(
        compose_command("api"),
        {**env, "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2"},
        log_dir,
        "api",
    )
    workers: list[subprocess.Popen] = []
    try:
        wait_for(f"{api_url}/readyz", api)
        for index in range(2):
            worker_env = {**env, "WORKER_API_URL": api_url}
            workers.append(start(compose_command("worker"), worker_env, log_dir, f"worker-{index}"))

        created = requests.post(
            f"{api_url}/api/enterprise/video-batch",
            json={"items": [{"prompt": f"stack video {i}"} for i in range(6)]},
            headers={"x-api-key": api_key, "x-request-id": f"stack-{uuid.uuid4()}"},
            timeout=30,
        )
        assert created.status_code == 201, created.text
        batch_id = created.json()["batch_id"]

        deadline = time.monotonic() + 60
        while True:
            batch = requests.get(
                f"{api_url}/api/enterprise/video-batch/{batch_id}",
                headers={"x-api-key": api_key},
                timeout=10,
            ).json()
            if batch["status"] == "completed" or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert batch["status"] == "completed", batch
        assert batch["counts"]["completed"] == 6
        assert batch["available_credits"] == 40

        metrics = {
            sample.name: sample.value
            for family in text_string_to_metric_families(
                requests.get(f"{api_url}/metrics", timeout=10).text
            )
            for sample in family.samples
            if not sample.labels or sample.labels.get("status") == "completed"
        }
        assert metrics["videobatch_batches_created_total"] == 1
        assert metrics["videobatch_credits_charged_total"] == 60
        assert metrics["videobatch_tasks"] == 6
        assert metrics["videobatch_queue_depth"] == 0
    finally:
        for worker in workers:
            stop_process(worker)
        stop_process(api)
    for process in [api, *workers]:
        output = process.output_path.read_text()
        assert process.returncode == 0, output[-3000:]
        # Every line each process wrote is one JSON object.
        assert [json.loads(line) for line in output.splitlines() if line.strip()]
