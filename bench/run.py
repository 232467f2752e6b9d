"""The create/replay benchmark: videobatch under gunicorn against its two bare baselines.

    .venv/bin/python -m bench.run                 # 3 repeats, medians, about 5 minutes
    .venv/bin/python -m bench.run --repeats 1 --duration 5

It drops and re-creates its own database (``videobatch_bench``) and uses Redis db 10, starts
``gunicorn wsgi:app -c gunicorn.conf.py`` and the baselines of ``bench/baselines.py`` with the
same --workers/--threads, drives each with wrk (``bench/load.lua``) from a second process, and
prints throughput, p50/p99 latency and the ratios to the baselines. Everything stays on
127.0.0.1, and every load run is bounded in time and in requests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import redis
import requests
from sqlalchemy import create_engine, text

from bench.servers import (
    BENCH_PEPPER,
    BENCH_SECRET,
    ROOT,
    Server,
    Target,
    baseline_env,
    empty_batches,
    fresh_database,
    start_gunicorn,
    videobatch_env,
)
from videobatch.app import create_app
from videobatch.config import Config
from videobatch.services.accounts import create_account

CREATE_PATH = "/api/enterprise/video-batch"
LOAD_SCRIPT = ROOT / "bench" / "load.lua"
REPLAY_SET = 200  # distinct request ids a replay run cycles over
LARGE_BATCH = 1000
LARGE_SAMPLES = 20
TARGETS = {"create": 0.5, "replay": 0.6}
LOOKUP_BASELINE = "baseline: Redis GET + SELECT"


@dataclass(frozen=True)
class Figures:
    """One load run as wrk saw it."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float  # CPU time the server's processes spent per request: immune to a busy machine
    unexpected: int  # answers with another status than the scenario expects, and socket errors

    @classmethod
    def from_wrk(cls, line: dict, cpu_seconds: float) -> Figures:
        return cls(
            requests_per_s=line["requests"] / (line["duration_us"] / 1e6),
            p50_ms=line["p50_us"] / 1000,
            p99_ms=line["p99_us"] / 1000,
            cpu_ms=cpu_seconds * 1000 / max(line["requests"], 1),
            unexpected=line["unexpected"] + line["socket_errors"],
        )


def batch_body(size: int) -> bytes:
    """A create body with ``size`` items shaped like a real campaign's."""
    items = [
        {
            "prompt": f"A cinematic video of a city at sunset, shot {position} of the campaign",
            "duration_seconds": 5,
            "aspect_ratio": "16:9",
            "style": "cinematic",
            "client_ref": f"row-{position}",
        }
        for position in range(size)
    ]
    return json.dumps({"items": items, "metadata": {"campaign": "bench"}}).encode()


class LoadGenerator:
    """wrk with bench/load.lua, bounded by --duration and a per-thread request budget."""

    def __init__(self, args: argparse.Namespace, api_key: str, workdir: Path) -> None:
        self.args = args
        self.env = dict(os.environ, BENCH_API_KEY=api_key)
        self.workdir = workdir
        self.commands: dict[str, str] = {}

    def command(self, url: str, mode: str, status: int, body: str, arg: str, seconds: float):
        return [
            "wrk",
            f"-t{self.args.wrk_threads}",
            f"-c{self.args.connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(LOAD_SCRIPT.relative_to(ROOT)),
            url,
            "--",
            mode,
            str(status),
            str(self.args.max_requests),
            body,
            arg,
        ]

    def run(
        self, label: str, server: Server, path: str, mode: str, status: int, body: str, arg: str
    ) -> Figures:
        url = server.url + path
        if self.args.warmup:
            warmup_arg = arg + "-warmup" if mode == "create" else arg
            self._wrk(self.command(url, mode, status, body, warmup_arg, self.args.warmup))
        command = self.command(url, mode, status, body, arg, self.args.duration)
        self.commands[label] = "BENCH_API_KEY=... " + shlex.join(command)
        load_before = os.getloadavg()[0]
        cpu_before = server.cpu_seconds()
        line = self._wrk(command)
        figures = Figures.from_wrk(line, server.cpu_seconds() - cpu_before)
        print(
            f"  {label:<30} {figures.requests_per_s:6.0f} req/s  p50 {figures.p50_ms:6.1f} ms"
            f"  p99 {figures.p99_ms:6.1f} ms  cpu {figures.cpu_ms:5.2f} ms/req"
            f"  unexpected {figures.unexpected}  (load before {load_before:.1f})",
            flush=True,
        )
        return figures

    def _wrk(self, command: list[str]) -> dict:
        finished = subprocess.run(
            command,
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=self.args.duration + 60,
            check=True,
        )
        for line in finished.stdout.splitlines():
            if line.startswith("BENCH_JSON "):
                return json.loads(line.removeprefix("BENCH_JSON "))
        raise RuntimeError(f"wrk printed no figures:\n{finished.stdout}\n{finished.stderr}")


def create_bench_account(target: Target) -> tuple[str, str]:
    """An account that never runs out of credits; returns (account id, API key)."""
    config = Config(
        database_url=target.database_url,
        redis_url=target.redis_url,
        api_key_pepper=BENCH_PEPPER,
        internal_worker_secret=BENCH_SECRET,
    )
    app = create_app(config)
    database = app.extensions["videobatch.db"]
    with database.transaction() as session:
        account = create_account(
            session, "bench", credits=10**15, cost_per_video=10, pepper=BENCH_PEPPER
        )
    database.dispose()
    return str(account.account_id), account.api_key


def make_replay_set(api: Server, api_key: str, size: int, body: bytes) -> list[str]:
    """Create the batches a replay run POSTs again; returns their request ids."""
    request_ids = [f"replay-{size}-{uuid.uuid4().hex[:12]}" for _ in range(REPLAY_SET)]
    with requests.Session() as http:
        for request_id in request_ids:
            answer = http.post(
                api.url + CREATE_PATH,
                data=body,
                headers={
                    "x-api-key": api_key,
                    "x-request-id": request_id,
                    "Content-Type": "application/json",
                },
                timeout=30,
            )
            answer.raise_for_status()
    return request_ids


def large_batch_latency(api: Server, api_key: str) -> list[float]:
    """Latencies (ms) of sequential 1,000-item creates on an otherwise idle server."""
    body = batch_body(LARGE_BATCH)
    latencies = []
    with requests.Session() as http:
        for _ in range(LARGE_SAMPLES):
            started = time.perf_counter()
            answer = http.post(
                api.url + CREATE_PATH,
                data=body,
                headers={
                    "x-api-key": api_key,
                    "x-request-id": f"large-{uuid.uuid4().hex}",
                    "Content-Type": "application/json",
                },
                timeout=30,
            )
            latencies.append((time.perf_counter() - started) * 1000)
            if answer.status_code != 201:
                raise RuntimeError(f"1,000-item create answered {answer.status_code}")
    return latencies


def median_figures(runs: list[Figures]) -> Figures:
    return Figures(
        requests_per_s=statistics.median(run.requests_per_s for run in runs),
        p50_ms=statistics.median(run.p50_ms for run in runs),
        p99_ms=statistics.median(run.p99_ms for run in runs),
        cpu_ms=statistics.median(run.cpu_ms for run in runs),
        unexpected=sum(run.unexpected for run in runs),
    )


def environment_line(target: Target) -> str:
    engine = create_engine(target.database_url)
    with engine.connect() as connection:
        postgres = connection.execute(text("SHOW server_version")).scalar_one()
    engine.dispose()
    redis_version = redis.Redis.from_url(target.redis_url).info("server")["redis_version"]
    return (
        f"{os.cpu_count()} cores, Python {platform.python_version()}, PostgreSQL {postgres},"
        f" Redis {redis_version}, {platform.platform()}"
    )


def report(args, results, large, load: LoadGenerator, servers, target: Target) -> None:
    medians = {label: median_figures(runs) for label, runs in results.items()}
    print(f"\n== videobatch benchmark, medians of {args.repeats} run(s) ==")
    print(environment_line(target))
    print(
        f"gunicorn --workers {args.workers} --threads {args.threads} (gunicorn.conf.py);"
        f" wrk -t{args.wrk_threads} -c{args.connections} -d{args.duration}s on the same machine"
    )
    print(
        f"{'scenario':<32} {'req/s':>6} {'p50 ms':>7} {'p99 ms':>7} {'cpu ms':>7}"
        "   median of the runs' ratios to the baseline: req/s (target), cpu"
    )
    for label, figures in medians.items():
        line = (
            f"{label:<32} {figures.requests_per_s:6.0f} {figures.p50_ms:7.1f}"
            f" {figures.p99_ms:7.1f} {figures.cpu_ms:7.2f}"
        )
        kind = label.split()[0]
        if kind in TARGETS:
            size = label.split()[1]
            baseline = f"baseline: insert {size} items" if kind == "create" else LOOKUP_BASELINE
            # Each run's ratio compares runs taken seconds apart; their median is steadier than
            # a ratio of medians when other work shares the machine.
            pairs = list(zip(results[label], results[baseline], strict=True))
            ratio = statistics.median(
                mine.requests_per_s / base.requests_per_s for mine, base in pairs
            )
            cpu_ratio = statistics.median(mine.cpu_ms / base.cpu_ms for mine, base in pairs)
            verdict = "ok" if ratio >= TARGETS[kind] else "BELOW"
            line += f"   {ratio:4.2f}x ({TARGETS[kind]}x {verdict}), {cpu_ratio:4.1f}x the cpu"
        print(line)
    unexpected = sum(figures.unexpected for figures in medians.values())
    print(f"answers with an unexpected status, or socket errors, in all runs: {unexpected}")
    print(
        f"{LARGE_BATCH}-item create, {len(large)} sequential requests on an idle server: p50"
        f" {statistics.median(large):.0f} ms, max {max(large):.0f} ms"
    )
    print("\ncommands:")
    print("  .venv/bin/python -m bench.run " + shlex.join(args.argv))
    for server in servers:
        command = shlex.join(server.command[1:]).replace("-m gunicorn", "gunicorn", 1)
        print(f"  [{server.name}] {command}")
    for label, command in load.commands.items():
        print(f"  [{label}] {command}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--duration", type=int, default=10, help="seconds per load run")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up per run")
    parser.add_argument("--max-requests", type=int, default=200_000, help="per wrk thread")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 100])
    parser.add_argument(
        "--database-url",
        default="postgresql+psycopg2://postgres@127.0.0.1:5432/videobatch_bench",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/10")
    parser.add_argument(
        "--app-env",
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help="extra settings for videobatch, e.g. RATE_LIMIT_ENABLED=0 LOG_LEVEL=WARNING",
    )
    args = parser.parse_args()
    args.argv = sys.argv[1:]
    return args


def main() -> None:
    args = parse_args()
    target = Target(args.database_url, args.redis_url)
    fresh_database(target)
    account_id, api_key = create_bench_account(target)
    shape = {"workers": args.workers, "threads": args.threads}
    servers = [
        start_gunicorn(
            "videobatch",
            "wsgi:app",
            videobatch_env(target, **dict(setting.split("=", 1) for setting in args.app_env)),
            probe="/healthz",
            **shape,
        ),
        start_gunicorn(
            "baseline insert",
            "bench.baselines:insert_app",
            baseline_env(target, account_id),
            probe="/",
            **shape,
        ),
        start_gunicorn(
            "baseline lookup",
            "bench.baselines:lookup_app",
            baseline_env(target, account_id),
            probe="/",
            **shape,
        ),
    ]
    api, insert, lookup = servers
    results: dict[str, list[Figures]] = defaultdict(list)
    large: list[float] = []
    cache = redis.Redis.from_url(target.redis_url)
    with tempfile.TemporaryDirectory(prefix="videobatch-bench-") as workdir:
        load = LoadGenerator(args, api_key, Path(workdir))

        def measure(label: str, server: Server, path: str, *rest: str | int) -> None:
            results[label].append(load.run(label, server, path, *rest))

        try:
            for repeat in range(args.repeats):
                print(f"run {repeat + 1}/{args.repeats}", flush=True)
                for size in args.sizes:
                    body_file = Path(workdir) / f"body-{size}.json"
                    body_file.write_bytes(batch_body(size))
                    body = str(body_file)
                    empty_batches(target)
                    prefix = f"r{repeat}-{uuid.uuid4().hex[:8]}"
                    measure(f"create {size} items", api, CREATE_PATH, "create", 201, body, prefix)
                    measure(
                        f"baseline: insert {size} items",
                        insert,
                        "/batch",
                        "create",
                        201,
                        body,
                        prefix,
                    )
                    empty_batches(target)
                    replay_ids = make_replay_set(api, api_key, size, body_file.read_bytes())
                    ids_file = Path(workdir) / f"ids-{size}.txt"
                    ids_file.write_text("\n".join(replay_ids) + "\n")
                    measure(
                        f"replay {size} items",
                        api,
                        CREATE_PATH,
                        "replay",
                        200,
                        body,
                        str(ids_file),
                    )
                for request_id in replay_ids:
                    cache.set(f"bench:{request_id}", json.dumps({"batch_id": request_id}))
                measure(LOOKUP_BASELINE, lookup, "/batch/", "lookup", 200, "-", str(ids_file))
                empty_batches(target)
                large.extend(large_batch_latency(api, api_key))
        finally:
            for server in servers:
                server.stop()
        report(args, results, large, load, servers, target)


if __name__ == "__main__":
    main()
