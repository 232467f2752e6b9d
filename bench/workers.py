"""The worker benchmark: tasks claimed and completed per second through the internal API.

    .venv/bin/python -m bench.workers                  # 1, 4 and 16 workers, 3 repeats
    .venv/bin/python -m bench.workers --concurrency 4 --repeats 1

Each worker is its own process running the loop ``videobatch worker`` runs, over HTTP with the
internal secret: ``POST /api/internal/tasks/claim`` (``max_tasks`` at a time), the simulated
provider at zero delay, then ``POST /tasks/<id>/complete`` for each task. A run ends when the
queue is empty or its time is up. It also prints the plan of the claim statement
(``EXPLAIN ANALYZE`` on a full queue, rolled back).
"""

from __future__ import annotations

import argparse
import multiprocessing
import shlex
import statistics
import sys
import time
import uuid
from dataclasses import dataclass

import requests
from sqlalchemy import create_engine, text

from bench.servers import (
    BENCH_SECRET,
    Server,
    Target,
    empty_batches,
    fresh_database,
    start_gunicorn,
    videobatch_env,
)
from videobatch.services.tasks import CLAIM_SQL
from videobatch.worker.providers import GenerationTask
from videobatch.worker.providers.simulated import SimulatedProvider

CLAIM_PATH = "/api/internal/tasks/claim"
SEED_BATCH_SIZE = 1000


@dataclass(frozen=True)
class WorkerRun:
    """What one worker process did."""

    completed: int
    claim_ms: list[float]
    complete_ms: list[float]
    errors: int
    finished_at: float  # wall clock


def work(url: str, worker_id: str, max_tasks: int, start_at: float, deadline: float) -> WorkerRun:
    """From ``start_at``, claim, generate and complete until the queue is empty or ``deadline``.

    Every worker starts at the same wall-clock instant, so the time processes take to start
    (seconds for 16 on two busy cores) is not counted against the API.
    """
    provider = SimulatedProvider(delay_ms=0)
    time.sleep(max(start_at - time.time(), 0))
    headers = {"x-internal-secret": BENCH_SECRET}
    claim_ms: list[float] = []
    complete_ms: list[float] = []
    completed = errors = 0
    with requests.Session() as http:
        while time.time() < deadline:
            started = time.perf_counter()
            answer = http.post(
                url + CLAIM_PATH,
                json={"worker_id": worker_id, "max_tasks": max_tasks, "lease_seconds": 120},
                headers=headers,
                timeout=30,
            )
            claim_ms.append((time.perf_counter() - started) * 1000)
            if answer.status_code != 200:
                errors += 1
                continue
            claimed = answer.json()["tasks"]
            if not claimed:
                break
            for task in claimed:
                result = provider.generate(
                    GenerationTask(
                        task_id=uuid.UUID(task["task_id"]),
                        batch_id=uuid.UUID(task["batch_id"]),
                        position=task.get("position", 0),
                        prompt=task["prompt"],
                        params=task.get("params") or {},
                        attempt=task["attempt"],
                        max_attempts=task.get("max_attempts", 3),
                    )
                )
                started = time.perf_counter()
                answer = http.post(
                    f"{url}/api/internal/tasks/{task['task_id']}/complete",
                    json={"lease_token": task["lease_token"], "video_url": result.video_url},
                    headers=headers,
                    timeout=30,
                )
                complete_ms.append((time.perf_counter() - started) * 1000)
                if answer.status_code == 200:
                    completed += 1
                else:
                    errors += 1
    return WorkerRun(completed, claim_ms, complete_ms, errors, time.time())


def seed_tasks(api: Server, api_key: str, count: int) -> None:
    """Queue ``count`` tasks through the public API, in batches of 1,000."""
    with requests.Session() as http:
        for start in range(0, count, SEED_BATCH_SIZE):
            size = min(SEED_BATCH_SIZE, count - start)
            answer = http.post(
                api.url + "/api/enterprise/video-batch",
                json={"items": [{"prompt": f"queued video {start + n}"} for n in range(size)]},
                headers={"x-api-key": api_key, "x-request-id": f"seed-{uuid.uuid4().hex}"},
                timeout=60,
            )
            answer.raise_for_status()


@dataclass(frozen=True)
class WorkerFigures:
    tasks_per_s: float
    claim_p50_ms: float
    claim_p99_ms: float
    complete_p50_ms: float
    errors: int


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def measure(api: Server, concurrency: int, args: argparse.Namespace) -> WorkerFigures:
    """Run ``concurrency`` worker processes against the queued tasks; returns their figures."""
    start_at = time.time() + 3 + 0.5 * concurrency  # time enough for every process to start
    deadline = start_at + args.worker_duration
    with multiprocessing.get_context("spawn").Pool(concurrency) as pool:
        runs = pool.starmap(
            work,
            [
                (api.url, f"bench-{n}", args.claim_size, start_at, deadline)
                for n in range(concurrency)
            ],
        )
    elapsed = max(run.finished_at for run in runs) - start_at
    claims = [ms for run in runs for ms in run.claim_ms]
    completes = [ms for run in runs for ms in run.complete_ms]
    return WorkerFigures(
        tasks_per_s=sum(run.completed for run in runs) / elapsed,
        claim_p50_ms=percentile(claims, 0.5),
        claim_p99_ms=percentile(claims, 0.99),
        complete_p50_ms=percentile(completes, 0.5),
        errors=sum(run.errors for run in runs),
    )


def explain_claim(target: Target, max_tasks: int) -> str:
    """The claim statement's plan on the current queue, executed and rolled back."""
    engine = create_engine(target.database_url)
    params = {"max_tasks": max_tasks, "worker_id": "explain"}
    with engine.connect() as connection:
        transaction = connection.begin()
        # The statement's own parameters for the clock, spelled in SQL so EXPLAIN can run it.
        statement = CLAIM_SQL.replace(":now", "now()").replace(
            ":expires", "(now() + interval '2 minutes')"
        )
        plan = connection.execute(
            text("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement), params
        ).scalars()
        lines = "\n".join(plan)
        transaction.rollback()
    engine.dispose()
    return lines


def run_worker_benchmark(
    target: Target, api: Server, api_key: str, args: argparse.Namespace
) -> dict[int, list[WorkerFigures]]:
    """Every concurrency, ``args.repeats`` times, each on a freshly queued set of tasks."""
    results: dict[int, list[WorkerFigures]] = {n: [] for n in args.concurrency}
    for repeat in range(args.repeats):
        for concurrency in args.concurrency:
            empty_batches(target)
            seed_tasks(api, api_key, args.tasks)
            if repeat == 0 and concurrency == args.concurrency[0]:
                print("claim plan (EXPLAIN ANALYZE, full queue, rolled back):")
                print("  " + explain_claim(target, args.claim_size).replace("\n", "\n  "))
            figures = measure(api, concurrency, args)
            results[concurrency].append(figures)
            print(
                f"  {concurrency:2d} workers: {figures.tasks_per_s:6.0f} tasks/s completed,"
                f" claim p50 {figures.claim_p50_ms:.1f} ms p99 {figures.claim_p99_ms:.1f} ms,"
                f" complete p50 {figures.complete_p50_ms:.1f} ms, errors {figures.errors}",
                flush=True,
            )
    return results


def print_worker_report(results: dict[int, list[WorkerFigures]], args) -> None:
    print(
        f"\n== workers through the internal API, medians of {args.repeats} run(s),"
        f" max_tasks={args.claim_size}, {args.tasks} tasks queued per run =="
    )
    print(f"{'workers':>7} {'tasks/s':>8} {'claim p50':>10} {'claim p99':>10} {'complete p50':>13}")
    for concurrency, runs in results.items():
        print(
            f"{concurrency:7d} {statistics.median(r.tasks_per_s for r in runs):8.0f}"
            f" {statistics.median(r.claim_p50_ms for r in runs):8.1f}ms"
            f" {statistics.median(r.claim_p99_ms for r in runs):8.1f}ms"
            f" {statistics.median(r.complete_p50_ms for r in runs):11.1f}ms"
        )


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--claim-size", type=int, default=10, help="max_tasks per claim")
    parser.add_argument("--tasks", type=int, default=3000, help="tasks queued per run")
    parser.add_argument("--worker-duration", type=int, default=20, help="seconds per run, at most")


def main() -> None:
    from bench.run import create_bench_account

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_worker_arguments(parser)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--database-url",
        default="postgresql+psycopg2://postgres@127.0.0.1:5432/videobatch_bench",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/10")
    args = parser.parse_args()
    target = Target(args.database_url, args.redis_url)
    fresh_database(target)
    _, api_key = create_bench_account(target)
    api = start_gunicorn(
        "videobatch",
        "wsgi:app",
        videobatch_env(target),
        workers=args.workers,
        threads=args.threads,
        probe="/healthz",
    )
    try:
        results = run_worker_benchmark(target, api, api_key, args)
    finally:
        api.stop()
    print_worker_report(results, args)
    print(f"\ncommand: .venv/bin/python -m bench.workers {shlex.join(sys.argv[1:])}")
    print(f"  [videobatch] gunicorn wsgi:app -c gunicorn.conf.py {' '.join(api.command[6:])}")


if __name__ == "__main__":
    main()
