"""What a benchmark run stands on: its own database and Redis db, and gunicorn processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import redis
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from videobatch import schema

ROOT = Path(__file__).resolve().parent.parent
BENCH_PEPPER = "bench-pepper"
BENCH_SECRET = "bench-internal-secret"
LOG_DIR = ROOT / "var" / "bench"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Target:
    database_url: str  # SQLAlchemy URL (postgresql+psycopg2://...)
    redis_url: str

    @property
    def libpq_url(self) -> str:
        return self.database_url.replace("postgresql+psycopg2://", "postgresql://", 1)


def fresh_database(target: Target) -> None:
    """Drop and re-create the benchmark database, then apply the migrations."""
    url = make_url(target.database_url)
    if url.host not in ("127.0.0.1", "localhost"):
        raise SystemExit("the benchmark only runs against a local PostgreSQL")
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{url.database}"'))
    admin.dispose()
    engine = create_engine(url)
    schema.upgrade(engine)
    engine.dispose()
    redis.Redis.from_url(target.redis_url).flushdb()


def empty_batches(target: Target) -> None:
    """Forget every batch, task, charge and cached request id, keeping accounts and keys."""
    engine = create_engine(target.database_url)
    # Requests a load run left in flight can still hold locks for a moment: wait them out.
    for attempt in range(10):
        try:
            with engine.begin() as connection:
                connection.execute(text("SET lock_timeout = '2s'"))
                connection.execute(text("TRUNCATE credit_ledger, video_tasks, batch_jobs"))
            break
        except OperationalError:
            if attempt == 9:
                raise
            time.sleep(1)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    redis.Redis.from_url(target.redis_url).flushdb()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    name: str
    url: str
    command: list[str]
    process: subprocess.Popen

    def cpu_seconds(self) -> float:
        """CPU time used so far by gunicorn's master and workers (user + system).

        Workers that gunicorn recycled (max_requests) count through the master's children
        times, so the figure never goes backwards.
        """
        ticks = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # the process ended while we looked
            pid, ppid = int(stat.parent.name), int(fields[1])
            if pid == self.process.pid:
                ticks += sum(int(value) for value in fields[11:15])  # its own and its children's
            elif ppid == self.process.pid:
                ticks += int(fields[11]) + int(fields[12])
        return ticks / CLOCK_TICKS

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_gunicorn(
    name: str, app: str, env: dict[str, str], *, workers: int, threads: int, probe: str
) -> Server:
    """``gunicorn APP -c gunicorn.conf.py`` on a free local port; returns once ``probe`` answers."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        app,
        "-c",
        "gunicorn.conf.py",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
    ]
    # The log goes to a file: a pipe nobody reads would stall the server once it filled up.
    log = LOG_DIR / f"{name.replace(' ', '-')}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log_file
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited: {log.read_text()[-2000:]}")
        try:
            requests.get(url + probe, timeout=1)
            return Server(name, url, command, process)
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{name} did not start within 30 s")


def videobatch_env(target: Target, **extra: str) -> dict[str, str]:
    """The environment of a production-mode videobatch on the benchmark's database and Redis."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VIDEOBATCH_", "DATABASE_URL", "REDIS_URL", "API_KEY_"))
    }
    settings = dict(
        VIDEOBATCH_ENV="production",
        DATABASE_URL=target.database_url,
        REDIS_URL=target.redis_url,
        API_KEY_PEPPER=BENCH_PEPPER,
        INTERNAL_WORKER_SECRET=BENCH_SECRET,
        SIMULATED_DELAY_MS="0",
        # The limiter still runs (its Redis round trip is part of every request's cost), but
        # one API key sending thousands of requests a second must not be turned away.
        RATE_LIMIT_DEFAULT="10000000 per minute",
        RATE_LIMIT_INTERNAL="10000000 per minute",
    )
    env.update(settings, **extra)
    return env


def baseline_env(target: Target, account_id: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        BENCH_DATABASE_URL=target.libpq_url,
        BENCH_REDIS_URL=target.redis_url,
        BENCH_ACCOUNT_ID=account_id,
    )
    return env
