"""Schema-driven fuzzing: schemathesis against a live gunicorn on PostgreSQL and Redis.

Every operation of /openapi.json is called with generated input, valid and invalid, with a real
API key and the worker secret; the run fails on any 5xx and on any answer that does not match
the documented status codes, content types and shapes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEST_SECRET
from tests.factories import make_account

pytestmark = pytest.mark.services

CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = 50


def test_fuzzed_requests_never_fail_and_always_match_the_schema(live_server, tmp_path):
    account = make_account(live_server.app, credits=10**12)
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(CONFIG),
        "run",
        f"{live_server.url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        "20261204",
        "--header",
        f"x-api-key: {account.api_key}",
        "--header",
        f"x-internal-secret: {TEST_SECRET}",
        "--no-color",
    ]
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False
    )
    report = run.stdout + run.stderr
    assert "Operations:" in report, report[-5000:]
    assert run.returncode == 0, report[-8000:]
    print(report[report.find("SUMMARY") :].strip())  # shown with pytest -s / -rP
