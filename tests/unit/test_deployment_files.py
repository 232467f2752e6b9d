"""The container files agree with the code: every command exists, every setting is listed.

No Docker engine runs in CI, so this is how the Dockerfile and docker-compose.yml are checked;
tests/integration/test_container_commands.py then runs the same commands by hand.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from videobatch.config import PRODUCTION_REQUIRED, WORKER_REQUIRED, Config

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = ("migrate", "api", "worker")
DOCKERFILE = (ROOT / "Dockerfile").read_text()
INTERPOLATION = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?::?[-?]([^}]*))?\}")


def settings_read_by_config() -> set[str]:
    source = inspect.getsource(Config.from_env)
    return set(re.findall(r'env(?:\.get\(|, )"([A-Z][A-Z0-9_]+)"', source)) | {
        *PRODUCTION_REQUIRED,
        *WORKER_REQUIRED,
    }


def settings_read_by_gunicorn_conf() -> set[str]:
    return set(
        re.findall(r'_setting\(\s*"([A-Z][A-Z0-9_]+)"', (ROOT / "gunicorn.conf.py").read_text())
    )


def settings_read_by_compose() -> set[str]:
    return {name for name, _ in INTERPOLATION.findall((ROOT / "docker-compose.yml").read_text())}


def settings_in_env_example() -> set[str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return {
        match.group(1) for line in lines if (match := re.match(r"#? ?([A-Z][A-Z0-9_]+)=", line))
    }


def expand(argument: str) -> str:
    """A compose argument with ``${NAME:-default}`` replaced by its default."""
    return INTERPOLATION.sub(lambda match: match.group(2) or "", argument)


def test_env_example_lists_exactly_the_settings_that_are_read():
    read = settings_read_by_config() | settings_read_by_gunicorn_conf() | settings_read_by_compose()
    listed = settings_in_env_example()
    assert read - listed == set(), "settings missing from .env.example"
    assert listed - read == set(), ".env.example lists settings nothing reads"


def test_compose_has_the_stack_with_healthchecks_volumes_and_ordered_start():
    assert set(SERVICES) == {"postgres", "redis", "migrate", "api", "worker"}
    for store in ("postgres", "redis"):
        assert SERVICES[store]["healthcheck"]["test"]
        assert SERVICES[store]["volumes"]
        assert SERVICES[store]["volumes"][0].split(":")[0] in COMPOSE["volumes"]
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert SERVICES["api"]["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"},
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert SERVICES["worker"]["depends_on"]["api"]["condition"] == "service_healthy"
    # --scale worker=N needs a worker without a fixed name or host port.
    assert "container_name" not in SERVICES["worker"] and "ports" not in SERVICES["worker"]
    # ... and `--scale api=N` needs a range of host ports, one per replica.
    assert re.fullmatch(r"\d+-\d+:8000", expand(SERVICES["api"]["ports"][0]))


def test_app_services_run_in_production_mode_with_the_service_addresses():
    for name in APP_SERVICES:
        environment = SERVICES[name]["environment"]
        assert environment["VIDEOBATCH_ENV"] == "production"
    for name in ("migrate", "api"):
        assert "@postgres:5432/" in SERVICES[name]["environment"]["DATABASE_URL"]
        assert SERVICES[name]["environment"]["REDIS_URL"].startswith("redis://redis:6379/")
    assert SERVICES["worker"]["environment"]["WORKER_API_URL"] == "http://api:8000"


def test_the_image_is_multi_stage_slim_unprivileged_and_checks_its_health():
    stages = re.findall(r"^FROM (\S+) AS (\w+)", DOCKERFILE, re.MULTILINE)
    assert [image for image, _ in stages] == ["python:3.11-slim", "python:3.11-slim"]
    runtime = DOCKERFILE.split("AS runtime", 1)[1]
    assert "build-essential" not in runtime and "apt-get install" not in runtime
    assert re.search(r"^USER videobatch$", runtime, re.MULTILINE)
    assert "HEALTHCHECK" in runtime and "/healthz" in runtime
    cmd = re.search(r"^CMD (\[.*\])$", runtime, re.MULTILINE)
    assert yaml.safe_load(cmd.group(1)) == SERVICES["api"]["command"]


def command_env(tmp_path: Path) -> dict[str, str]:
    """The embedded default in a scratch directory: enough to load the app and parse commands."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VIDEOBATCH_", "DATABASE_URL", "REDIS_URL", "PROMETHEUS_"))
    }
    env["VIDEOBATCH_VAR_DIR"] = str(tmp_path / "var")
    return env


@pytest.mark.parametrize("service", APP_SERVICES)
def test_every_service_command_exists_in_the_project(service, tmp_path):
    command = [expand(argument) for argument in SERVICES[service]["command"]]
    program, arguments = command[0], command[1:]
    if program == "gunicorn":
        module, _, attribute = arguments[0].partition(":")
        assert (ROOT / f"{module}.py").is_file() and attribute == "app"
        assert (ROOT / arguments[arguments.index("-c") + 1]).is_file()
        check = [sys.executable, "-m", "gunicorn", *arguments, "--check-config"]
    else:
        assert program == "videobatch"
        check = [str(Path(sys.executable).parent / "videobatch"), *arguments, "--help"]
    result = subprocess.run(
        check, cwd=ROOT, env=command_env(tmp_path), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
