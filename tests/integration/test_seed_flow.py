"""scripts/test-batch-flow.sh, whole, against gunicorn on PostgreSQL + Redis (SPEC 10).

The script creates a batch, replays it, drives the worker through run-once until the batch ends,
and checks counts, video URLs, credits and a final replay; these tests run it as a user would
and then check the rows behind what it printed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import ROOT, TEST_SECRET, server_env, start_gunicorn, stop_process
from tests.factories import make_account
from tests.worker_api import assert_money_balanced, refunds

SCRIPT = ROOT / "scripts" / "test-batch-flow.sh"
BASH = shutil.which("bash") or "/bin/bash"

# The lines of the original's step 1.5, as SEED.md shows them.
SEED_LINES = [
    r"^1\.5\) 🔄 Test idempotency \(same request_id, POST twice\) \.\.\.$",
    r"^   First call batch_id: (?P<batch>[0-9a-f-]{36})$",
    r"^   Making second call with same request_id: test-\d+$",
    r"^✅ Idempotency test passed:$",
    r"^   idempotent_replay: true$",
    r"^   batch_id matches: (?P=batch)$",
]


def run_script(url: str, api_key: str, *, secret: str = TEST_SECRET, path: str | None = None):
    env = {
        "PATH": path or os.environ["PATH"],
        "BASE_URL": url,
        "ENTERPRISE_API_KEY": api_key,
        "INTERNAL_WORKER_SECRET": secret,
        "POLL_TIMEOUT_S": "60",
        "LANG": "C.UTF-8",
    }
    return subprocess.run(
        [BASH, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def gunicorn(request, postgres_url, redis_url) -> Iterator[str]:
    """gunicorn with 3 processes and the settings the test's parameter names."""
    url, process = start_gunicorn(
        server_env(postgres_url, redis_url, RETRY_BASE_DELAY_S="0.1", **request.param),
        workers=3,
        threads=4,
    )
    yield url
    stop_process(process)


@pytest.mark.services
@pytest.mark.parametrize("gunicorn", [{}], indirect=True)
def test_seed_flow_passes_and_the_batch_completes(gunicorn, pg_app):
    account = make_account(pg_app, credits=1000)
    result = run_script(gunicorn, account.api_key)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    step = "\n".join(SEED_LINES[:3]) + r"\n\{\n[\s\S]*?\n\}\n" + "\n".join(SEED_LINES[3:])
    match = re.search(step, out, re.MULTILINE)
    assert match, out
    assert '"idempotent_replay": true' in match.group(0)
    assert "✅ Batch ended: completed" in out
    assert "✅ Every task ended; 2 video URL(s) present" in out
    assert "✅ Credits: charged 20 once, refunded 0 for 0 unsuccessful task(s)" in out
    assert "✅ Replay shows the final status: completed" in out
    assert out.count("https://videos.videobatch.invalid/simulated/") == 2
    state = assert_money_balanced(pg_app, account.account_id)
    assert (state["balance"], state["charges"], state["batches"], state["tasks"]) == (980, 1, 1, 2)


@pytest.mark.services
@pytest.mark.parametrize(
    "gunicorn", [{"SIMULATED_FAILURE_RATE": "0.5", "SIMULATED_SEED": "4"}], indirect=True
)
def test_seed_flow_with_a_failing_task_checks_its_refund(gunicorn, pg_app):
    # Seed 4 picks the second prompt to fail: it is retried, exhausted and refunded.
    account = make_account(pg_app, credits=1000)
    result = run_script(gunicorn, account.api_key)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "✅ Batch ended: partially_completed" in out
    assert "task 1: failed (simulated_failure)" in out
    assert "✅ Credits: charged 20 once, refunded 10 for 1 unsuccessful task(s)" in out
    assert "✅ Replay shows the final status: partially_completed" in out
    assert len(refunds(pg_app, account.account_id)) == 1
    assert assert_money_balanced(pg_app, account.account_id)["balance"] == 990


@pytest.mark.services
@pytest.mark.parametrize("gunicorn", [{"SIMULATED_FAILURE_RATE": "1"}], indirect=True)
def test_seed_flow_without_jq_skips_only_the_idempotency_test(gunicorn, pg_app, tmp_path):
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("curl", "date", "sleep"):
        (tools / tool).symlink_to(shutil.which(tool))
    (tools / "python3").symlink_to(os.path.realpath(sys.executable))
    account = make_account(pg_app, credits=1000)
    result = run_script(gunicorn, account.api_key, path=str(tools))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "jq is not installed: skipping the idempotency test" in out
    assert "✅ Idempotency test passed" not in out
    assert "✅ Batch ended: failed" in out
    assert "✅ Credits: charged 20 once, refunded 20 for 2 unsuccessful task(s)" in out
    assert "✅ Replay shows the final status: failed" in out
    assert assert_money_balanced(pg_app, account.account_id)["balance"] == 1000


@pytest.mark.services
@pytest.mark.parametrize("gunicorn", [{}], indirect=True)
def test_seed_flow_fails_with_a_wrong_worker_secret(gunicorn, pg_app):
    account = make_account(pg_app, credits=1000)
    result = run_script(gunicorn, account.api_key, secret="wrong")
    assert result.returncode == 1
    assert "❌ run-once failed: HTTP 401" in result.stdout


class _MismatchedReplays(BaseHTTPRequestHandler):
    """A broken server: every create answers a different batch id."""

    calls = 0

    def do_POST(self) -> None:
        type(self).calls += 1
        body = {
            "ok": True,
            "batch_id": f"00000000-0000-4000-8000-{type(self).calls:012d}",
            "request_id": self.headers["x-request-id"],
            "status": "queued",
            "total_count": 2,
            "cost_per_video": 10,
            "required_credits": 20,
            "available_credits": 980,
            "idempotent_replay": type(self).calls > 1,
        }
        payload = json.dumps(body).encode()
        self.send_response(201 if type(self).calls == 1 else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


def test_seed_flow_reports_a_batch_id_mismatch_as_the_original_does():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _MismatchedReplays)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = run_script(f"http://127.0.0.1:{server.server_port}", "vb_" + "k" * 40)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert result.returncode == 1
    assert (
        "❌ Idempotency test failed: batch_id mismatch\n"
        "   First call:  00000000-0000-4000-8000-000000000001\n"
        "   Second call: 00000000-0000-4000-8000-000000000002\n"
    ) in result.stdout


def test_script_is_executable():
    assert os.access(SCRIPT, os.X_OK)
    assert Path(SCRIPT).read_text().startswith("#!/usr/bin/env bash")
