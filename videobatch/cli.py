"""The ``videobatch`` command: operations, the embedded default, and the worker."""

from __future__ import annotations

import json
import uuid
from typing import Any

import click
from flask import Flask
from flask.cli import FlaskGroup

from videobatch import schema
from videobatch.errors import APIError
from videobatch.extensions import get_config, get_db
from videobatch.services import accounts, ledger
from videobatch.submit import submit


def _echo_json(value: dict[str, Any]) -> None:
    click.echo(json.dumps(value, default=str))


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a UUID") from None


def _fail(error: APIError) -> None:
    raise click.ClickException(error.detail)


def register_commands(app: Flask) -> None:
    app.cli.add_command(db_group)
    app.cli.add_command(accounts_group)
    app.cli.add_command(keys_group)
    app.cli.add_command(credits_group)
    app.cli.add_command(serve)
    app.cli.add_command(reap)


@click.group("db", help="Database schema.")
def db_group() -> None:
    pass


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply the migrations up to REVISION."""
    schema.upgrade(get_db().engine, revision)
    click.echo(f"database at {revision}")


@click.group("accounts", help="Customer accounts.")
def accounts_group() -> None:
    pass


@accounts_group.command("create")
@click.argument("name")
@click.option("--credits", "credits_", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--cost-per-video",
    type=click.IntRange(min=1),
    default=None,
    help="Credits per video (default: COST_PER_VIDEO).",
)
def accounts_create(name: str, credits_: int, cost_per_video: int | None) -> None:
    """Create an account with an API key; prints account_id, api_key, available_credits."""
    config = get_config()
    with get_db().transaction() as session:
        created = accounts.create_account(
            session,
            name,
            credits=credits_,
            cost_per_video=cost_per_video or config.cost_per_video,
            pepper=config.api_key_pepper,
        )
    _echo_json(
        {
            "account_id": created.account_id,
            "key_id": created.key_id,
            "api_key": created.api_key,
            "available_credits": created.available_credits,
        }
    )


@click.group("keys", help="API keys.")
def keys_group() -> None:
    pass


@keys_group.command("create")
@click.argument("account_id", type=_uuid)
def keys_create(account_id: uuid.UUID) -> None:
    """Create another API key for ACCOUNT_ID; prints key_id and api_key."""
    try:
        with get_db().transaction() as session:
            key_id, api_key = accounts.create_key(
                session, account_id, pepper=get_config().api_key_pepper
            )
    except APIError as error:
        _fail(error)
    _echo_json({"account_id": account_id, "key_id": key_id, "api_key": api_key})


@keys_group.command("revoke")
@click.argument("key_id", type=_uuid)
def keys_revoke(key_id: uuid.UUID) -> None:
    """Revoke KEY_ID."""
    try:
        with get_db().transaction() as session:
            accounts.revoke_key(session, key_id)
    except APIError as error:
        _fail(error)
    _echo_json({"key_id": key_id, "revoked": True})


@click.group("credits", help="Credit balances.")
def credits_group() -> None:
    pass


@credits_group.command("grant")
@click.argument("account_id", type=_uuid)
@click.argument("amount", type=click.IntRange(min=1))
def credits_grant(account_id: uuid.UUID, amount: int) -> None:
    """Add AMOUNT credits to ACCOUNT_ID; prints the new balance."""
    try:
        with get_db().transaction() as session:
            balance = ledger.grant_credits(session, account_id, amount)
    except APIError as error:
        _fail(error)
    _echo_json({"account_id": account_id, "granted": amount, "available_credits": balance})


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--worker/--no-worker",
    "with_worker",
    default=True,
    show_default=True,
    help="Run a worker thread here, so batches complete on their own.",
)
def serve(host: str, port: int, with_worker: bool) -> None:
    """Run the API on the embedded default (schema applied, demo account on first start)."""
    from flask import current_app
    from werkzeug.serving import run_simple

    from videobatch.embedded import prepare, start_embedded_worker

    app = current_app._get_current_object()
    for line in prepare(app, base_url=f"http://{host}:{port}"):
        click.echo(line)
    embedded_worker = start_embedded_worker(app) if with_worker else None
    if embedded_worker is not None:
        click.echo(f"worker thread running the {embedded_worker.provider.name} provider")
    try:
        run_simple(host, port, app, threaded=True, use_reloader=False)
    finally:
        if embedded_worker is not None:
            embedded_worker.stop()


@click.command("reap")
@click.option("--limit", type=click.IntRange(1, 10_000), default=500, show_default=True)
@click.option("--loop", is_flag=True, help="Keep reaping every --interval seconds.")
@click.option("--interval", type=click.FloatRange(0.1), default=5.0, show_default=True)
def reap(limit: int, loop: bool, interval: float) -> None:
    """Settle expired leases nobody reclaimed: requeue, or fail/cancel and refund."""
    import time

    from videobatch.services.tasks import reap_expired_leases

    while True:
        with get_db().transaction() as session:
            report = reap_expired_leases(session, limit=limit)
        _echo_json(
            {"requeued": report.requeued, "failed": report.failed, "cancelled": report.cancelled}
        )
        if not loop:
            return
        time.sleep(interval)


@click.command("worker")
@click.option(
    "--api-url", default=None, help="The API the worker claims from (default: WORKER_API_URL)."
)
@click.option("--concurrency", type=click.IntRange(1, 256), default=4, show_default=True)
@click.option("--lease-seconds", type=click.IntRange(1, 3600), default=60, show_default=True)
@click.option("--poll-interval", type=click.FloatRange(0.01, 60), default=1.0, show_default=True)
@click.option(
    "--drain-timeout",
    type=click.FloatRange(0),
    default=30.0,
    show_default=True,
    help="On SIGTERM, how long running tasks may finish before they are released.",
)
@click.option("--worker-id", default=None, help="Name in leases and logs (default: host:pid).")
def worker(
    api_url: str | None,
    concurrency: int,
    lease_seconds: int,
    poll_interval: float,
    drain_timeout: float,
    worker_id: str | None,
) -> None:
    """Run a worker: claim tasks over the internal API, generate, report (SIGTERM drains)."""
    from videobatch.config import WORKER_REQUIRED, Config, ConfigError
    from videobatch.logs import configure_logging
    from videobatch.worker.runner import run_worker_process

    try:
        config = Config.from_env(required=WORKER_REQUIRED).with_embedded_secrets()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    configure_logging(config.log_level, [config.internal_worker_secret])
    status = run_worker_process(
        config,
        api_url=api_url or config.worker_api_url,
        concurrency=concurrency,
        lease_seconds=lease_seconds,
        poll_interval_s=poll_interval,
        drain_timeout_s=drain_timeout,
        worker_id=worker_id,
    )
    raise SystemExit(status)


def _create_app_or_refuse() -> Flask:
    """The app, or one clear line (no traceback) when the configuration may not start."""
    from videobatch.app import create_app
    from videobatch.config import ConfigError

    try:
        return create_app()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


def main() -> None:
    """Entry point of the ``videobatch`` console script."""
    cli = FlaskGroup(
        create_app=_create_app_or_refuse,
        add_default_commands=False,
        load_dotenv=False,
        set_debug_flag=False,
        help="videobatch: idempotent, credit-charging video batches.",
    )
    # The worker needs no app (no database): it talks to the API over HTTP.
    cli.add_command(worker)
    cli.add_command(submit)  # a client of the API, like the worker
    cli.main(prog_name="videobatch")
