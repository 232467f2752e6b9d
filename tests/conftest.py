"""Fixtures for both tiers.

The fast tier runs on SQLite and fakeredis. The full tier (marker ``services``) runs on the real
PostgreSQL and Redis named by TEST_DATABASE_URL and TEST_REDIS_URL; when they cannot be reached
its tests fail, they are never skipped.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests
from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from videobatch import schema
from videobatch.app import create_app
from videobatch.config import Config
from videobatch.db import Base

ROOT = Path(__file__).resolve().parent.parent
TEST_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/videobatch_test"
)
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TEST_PEPPER = "test-pepper"
TEST_SECRET = "test-internal-secret"


def base_config(**changes) -> Config:
    return Config(
        api_key_pepper=TEST_PEPPER,
        internal_worker_secret=TEST_SECRET,
        api_key_cache_ttl_s=0,
        idempotency_wait_ms=2000,
        simulated_delay_ms=0,
    ).replace(**changes)


# -- the real services -------------------------------------------------------------------------


def recreate_database(url: URL) -> None:
    """Drop and create ``url``'s database; the full tier fails loudly, never skips, without it."""
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{url.database}"'))
    except Exception as error:
        pytest.fail(f"PostgreSQL at {url.render_as_string()} is not reachable: {error}")
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A fresh database on the real PostgreSQL, built by the migrations."""
    url = make_url(TEST_DATABASE_URL)
    recreate_database(url)
    engine = create_engine(url)
    schema.upgrade(engine)
    engine.dispose()
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def redis_url() -> str:
    client = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        pytest.fail(f"Redis at {TEST_REDIS_URL} is not reachable: {error}")
    return TEST_REDIS_URL


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('db')}/videobatch.db"
    engine = create_engine(url)
    schema.upgrade(engine)
    engine.dispose()
    return url


def _empty_tables(app: Flask) -> None:
    database = app.extensions["videobatch.db"]
    tables = [table.name for table in reversed(Base.metadata.sorted_tables)]
    with database.transaction() as session:
        if database.is_postgres:
            session.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
        else:
            for name in tables:
                session.execute(text(f"DELETE FROM {name}"))


def _make_app(config: Config) -> Iterator[Flask]:
    app = create_app(config)
    app.config["TESTING"] = True
    _empty_tables(app)
    app.extensions["videobatch.redis"].get().flushdb()
    yield app
    app.extensions["videobatch.db"].dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def app(request: pytest.FixtureRequest) -> Iterator[Flask]:
    """The app on each tier: SQLite + fakeredis, and PostgreSQL + Redis."""
    if request.param == "sqlite":
        config = base_config(database_url=request.getfixturevalue("sqlite_url"), redis_url="")
    else:
        config = base_config(
            database_url=request.getfixturevalue("postgres_url"),
            redis_url=request.getfixturevalue("redis_url"),
        )
    yield from _make_app(config)


@pytest.fixture
def pg_app(postgres_url: str, redis_url: str) -> Iterator[Flask]:
    """The app on the real PostgreSQL and Redis only."""
    yield from _make_app(base_config(database_url=postgres_url, redis_url=redis_url))


@pytest.fixture
def client(app: Flask):
    return app.test_client()


# -- a live gunicorn ---------------------------------------------------------------------------


@dataclass
class LiveServer:
    url: str
    app: Flask  # bound to the same database and Redis, for setting up and inspecting rows
    process: subprocess.Popen

    def post_batch(
        self, api_key: str, request_id: str, body: dict, timeout: float = 30
    ) -> requests.Response:
        return requests.post(
            f"{self.url}/api/enterprise/video-batch",
            json=body,
            timeout=timeout,
            headers={"x-api-key": api_key, "x-request-id": request_id},
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VIDEOBATCH_", "DATABASE_URL", "REDIS_URL"))
    }
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        API_KEY_PEPPER=TEST_PEPPER,
        INTERNAL_WORKER_SECRET=TEST_SECRET,
        API_KEY_CACHE_TTL_S="0",
        SIMULATED_DELAY_MS="0",
        # Small pools: several test servers run at once against PostgreSQL's 100 connections,
        # and a process never needs more connections than its 8 threads.
        DB_POOL_SIZE="2",
        DB_MAX_OVERFLOW="8",
    )
    env.update(extra)
    return env


def start_gunicorn(
    env: dict[str, str], workers: int = 4, threads: int = 8
) -> tuple[str, subprocess.Popen]:
    """gunicorn with the project's gunicorn.conf.py on a free port; its output goes to a file."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="gunicorn-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "wsgi:app",
            "-c",
            "gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    process.log_path = log.name  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {Path(log.name).read_text()[-3000:]}")
        try:
            requests.get(f"{url}/healthz", timeout=1).close()
            return url, process
        except (requests.ConnectionError, requests.Timeout):  # still booting
            time.sleep(0.2)
    stop_process(process)
    raise RuntimeError("gunicorn did not start within 30 s")


def stop_process(process: subprocess.Popen) -> None:
    """Stop a server the tests started, gracefully first."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    log_path = getattr(process, "log_path", None)
    if log_path:
        Path(log_path).unlink(missing_ok=True)


@pytest.fixture(scope="session")
def live_server_process(
    postgres_url: str, redis_url: str
) -> Iterator[tuple[str, subprocess.Popen]]:
    url, process = start_gunicorn(server_env(postgres_url, redis_url))
    yield url, process
    stop_process(process)


@pytest.fixture
def live_server(live_server_process, pg_app: Flask) -> LiveServer:
    """gunicorn (4 processes x 8 threads) on the real PostgreSQL and Redis, tables emptied."""
    url, process = live_server_process
    return LiveServer(url=url, app=pg_app, process=process)
