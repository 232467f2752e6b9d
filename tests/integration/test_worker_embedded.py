"""`videobatch serve`, the embedded default: a batch created against it completes on its own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.conftest import free_port, stop_process

VIDEOBATCH = str(Path(sys.executable).parent / "videobatch")


def read_credentials(path: Path) -> dict[str, str]:
    pairs = (line.removeprefix("export ").split("=", 1) for line in path.read_text().splitlines())
    return dict(pairs)


def test_batch_created_against_videobatch_serve_completes_by_itself(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VIDEOBATCH_", "DATABASE_URL", "REDIS_URL", "SIMULATED_"))
        and key not in ("INTERNAL_WORKER_SECRET", "API_KEY_PEPPER")
    }
    env.update(VIDEOBATCH_VAR_DIR=str(tmp_path / "var"), SIMULATED_DELAY_MS="50")
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [VIDEOBATCH, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    log.close()
    try:
        credentials = tmp_path / "var" / "demo-credentials.env"
        deadline = time.monotonic() + 30
        while not credentials.exists() or not _up(port):
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "videobatch serve did not start"
            time.sleep(0.1)
        key = read_credentials(credentials)["ENTERPRISE_API_KEY"]
        base = f"http://127.0.0.1:{port}/api/enterprise/video-batch"
        created = requests.post(
            base,
            json={"items": [{"prompt": "a city at sunset"}, {"prompt": "a cat playing"}]},
            headers={"x-api-key": key, "x-request-id": "embedded-1"},
            timeout=10,
        )
        assert created.status_code == 201
        batch_id = created.json()["batch_id"]
        deadline = time.monotonic() + 30
        while True:
            batch = requests.get(f"{base}/{batch_id}", headers={"x-api-key": key}, timeout=10)
            if batch.json()["status"] == "completed":
                break
            assert time.monotonic() < deadline, batch.json()
            time.sleep(0.1)
        assert all(task["video_url"] for task in batch.json()["tasks"])
        assert (
            "worker thread running the simulated provider" in (tmp_path / "serve.log").read_text()
        )
    finally:
        stop_process(server)


def _up(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False
