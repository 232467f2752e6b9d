"""``videobatch submit`` against a live gunicorn, with a stand-in worker on the internal API."""

from __future__ import annotations

import threading

import pytest
import requests
from click.testing import CliRunner

from tests.conftest import TEST_SECRET
from tests.factories import ledger_state, make_account
from videobatch.submit import submit

pytestmark = pytest.mark.services


class StandInWorker:
    """Claims tasks over the internal API; fails those whose prompt says so, completes the rest."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def call(self, path: str, body: dict) -> dict:
        response = requests.post(
            f"{self.url}/api/internal{path}",
            json=body,
            headers={"x-internal-secret": TEST_SECRET},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()

    def run(self) -> None:
        while not self.stop.is_set():
            claimed = self.call("/tasks/claim", {"worker_id": "stand-in", "max_tasks": 5})
            for task in claimed["tasks"]:
                path = f"/tasks/{task['task_id']}"
                if "fail" in task["prompt"]:
                    self.call(
                        f"{path}/fail",
                        {
                            "lease_token": task["lease_token"],
                            "error_code": "content_policy",
                            "error_message": "refused by the provider",
                            "retryable": False,
                        },
                    )
                else:
                    url = f"https://videos.example/{task['task_id']}.mp4"
                    self.call(
                        f"{path}/complete", {"lease_token": task["lease_token"], "video_url": url}
                    )
            self.stop.wait(0.05)

    def __enter__(self) -> StandInWorker:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def run_submit(live_server, api_key: str, path, *args: str):
    env = {"VIDEOBATCH_URL": live_server.url, "VIDEOBATCH_API_KEY": api_key}
    return CliRunner().invoke(submit, [str(path), *args], env=env, catch_exceptions=False)


def test_submit_prints_the_batch_id(live_server, tmp_path):
    account = make_account(live_server.app)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("A city at sunset\n\nA forest at dawn\n")
    result = run_submit(live_server, account.api_key, prompts)
    assert result.exit_code == 0, result.output
    batch_id = result.stdout.strip()
    assert len(batch_id) == 36
    again = run_submit(live_server, account.api_key, prompts, "--request-id", "file-1")
    replay = run_submit(live_server, account.api_key, prompts, "--request-id", "file-1")
    assert again.stdout == replay.stdout
    assert "replayed" in replay.stderr
    assert ledger_state(live_server.app, account.account_id)["batches"] == 2


def test_submit_wait_shows_progress_and_the_videos(live_server, tmp_path):
    account = make_account(live_server.app)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        '{"prompt": "A city at sunset", "client_ref": "a"}\nA forest at dawn\nA lake at noon\n'
    )
    with StandInWorker(live_server.url):
        result = run_submit(live_server, account.api_key, prompts, "--wait", "--timeout", "60")
    assert result.exit_code == 0, result.output
    assert "videos: 3/3 ended, 0 failed (completed)" in result.stderr
    lines = result.stdout.splitlines()
    assert len(lines[0]) == 36  # the batch id first
    assert sum("https://videos.example/" in line for line in lines) == 3
    assert "completed: 3 completed, 0 failed" in lines[-1]


def test_submit_wait_exits_non_zero_when_a_video_failed(live_server, tmp_path):
    account = make_account(live_server.app)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("A city at sunset\nplease fail this one\n")
    with StandInWorker(live_server.url):
        result = run_submit(live_server, account.api_key, prompts, "--wait", "--timeout", "60")
    assert result.exit_code == 1
    assert "content_policy: refused by the provider" in result.stdout
    assert "partially_completed" in result.stdout
    assert ledger_state(live_server.app, account.account_id)["balance"] == 1000 - 10


def test_submit_reports_api_errors_plainly(live_server, tmp_path):
    account = make_account(live_server.app, credits=5)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("A city at sunset\n")
    result = run_submit(live_server, account.api_key, prompts)
    assert result.exit_code == 1
    assert "insufficient_credits" in result.stderr
