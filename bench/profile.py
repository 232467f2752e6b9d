"""Where a create or a replay spends its time, in-process (pyinstrument).

    .venv/bin/python -m bench.profile --size 100 --requests 300 [--replay] [--html out.html]

Runs the app on the benchmark's own PostgreSQL database and Redis db (see bench/run.py) through
Flask's test client, so the profile shows the request's own Python work and its waits on
PostgreSQL and Redis, without HTTP or gunicorn in the way.
"""

from __future__ import annotations

import argparse
import time
import uuid

from pyinstrument import Profiler

from bench.run import CREATE_PATH, batch_body, create_bench_account
from bench.servers import BENCH_PEPPER, BENCH_SECRET, Target, fresh_database
from videobatch.app import create_app
from videobatch.config import Config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=2, help="items per batch")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--replay", action="store_true", help="profile replays, not creates")
    parser.add_argument("--html", help="write the profile as HTML here")
    parser.add_argument("--show-all", action="store_true", help="library frames too")
    parser.add_argument(
        "--database-url",
        default="postgresql+psycopg2://postgres@127.0.0.1:5432/videobatch_bench",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/10")
    args = parser.parse_args()

    target = Target(args.database_url, args.redis_url)
    fresh_database(target)
    _, api_key = create_bench_account(target)
    app = create_app(
        Config(
            env="production",
            database_url=target.database_url,
            redis_url=target.redis_url,
            api_key_pepper=BENCH_PEPPER,
            internal_worker_secret=BENCH_SECRET,
            rate_limit_default="10000000 per minute",
        )
    )
    client = app.test_client()
    body = batch_body(args.size)
    replay_ids = [f"replay-{uuid.uuid4().hex}" for _ in range(20)]

    def post(request_id: str) -> int:
        return client.post(
            CREATE_PATH,
            data=body,
            headers={
                "x-api-key": api_key,
                "x-request-id": request_id,
                "Content-Type": "application/json",
            },
        ).status_code

    for request_id in replay_ids:  # also warms the pool and the API-key cache
        assert post(request_id) == 201
    profiler = Profiler(interval=0.0005)
    started = time.perf_counter()
    with profiler:
        for number in range(args.requests):
            if args.replay:
                assert post(replay_ids[number % len(replay_ids)]) == 200
            else:
                assert post(f"profile-{uuid.uuid4().hex}") == 201
    elapsed = time.perf_counter() - started
    kind = "replays" if args.replay else "creates"
    print(
        f"{args.requests} {kind} of {args.size} items: {elapsed * 1000 / args.requests:.2f} ms"
        " each, one at a time"
    )
    print(profiler.output_text(unicode=False, color=False, show_all=args.show_all))
    if args.html:
        with open(args.html, "w") as html:
            html.write(profiler.output_html())
    app.extensions["videobatch.db"].dispose()


if __name__ == "__main__":
    main()
