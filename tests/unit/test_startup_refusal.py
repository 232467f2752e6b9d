"""Production never starts on missing secrets, and says why in one line (SPEC 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port

VIDEOBATCH = str(Path(sys.executable).parent / "videobatch")


def production_env(**present: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "INTERNAL_WORKER_SECRET", "API_KEY_PEPPER"}
        and not key.startswith(("VIDEOBATCH_", "WORKER_API_URL", "PROMETHEUS_"))
    }
    env.update(VIDEOBATCH_ENV="production", **present)
    return env


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


GUNICORN = [sys.executable, "-m", "gunicorn", "wsgi:app", "-c", "gunicorn.conf.py"]


@pytest.mark.parametrize(
    ("command", "missing"),
    [
        (GUNICORN, "DATABASE_URL, REDIS_URL, INTERNAL_WORKER_SECRET, API_KEY_PEPPER"),
        ([VIDEOBATCH, "db", "upgrade"], "DATABASE_URL, REDIS_URL, INTERNAL_WORKER_SECRET"),
        ([VIDEOBATCH, "worker"], "WORKER_API_URL, INTERNAL_WORKER_SECRET"),
    ],
    ids=["gunicorn", "db-upgrade", "worker"],
)
def test_production_without_secrets_refuses_with_one_clear_line(command, missing):
    env = production_env(BIND=f"127.0.0.1:{free_port()}")
    result = run(command, env)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"VIDEOBATCH_ENV=production needs {missing}" in output
    assert "refusing to start" in output
    assert "Traceback" not in output


def test_production_names_only_what_is_missing():
    env = production_env(
        DATABASE_URL="postgresql+psycopg2://nobody@127.0.0.1:1/none",
        REDIS_URL="redis://127.0.0.1:1/0",
        INTERNAL_WORKER_SECRET="a-long-enough-secret",
        BIND=f"127.0.0.1:{free_port()}",
    )
    result = run(GUNICORN, env)
    assert result.returncode != 0
    assert "VIDEOBATCH_ENV=production needs API_KEY_PEPPER; refusing to start" in result.stderr
    assert "Traceback" not in result.stderr
