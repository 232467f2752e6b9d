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
def serve(host: str, port: int) -> None:
    """Run the API on the embedded default (schema applied, demo account on first start)."""
    from flask import current_app
    from werkzeug.serving import run_simple

    from videobatch.embedded import prepare

    app = current_app._get_current_object()
    for line in prepare(app, base_url=f"http://{host}:{port}"):
        click.echo(line)
    run_simple(host, port, app, threaded=True, use_reloader=False)


def main() -> None:
    """Entry point of the ``videobatch`` console script."""
    from videobatch.app import create_app

    cli = FlaskGroup(
        create_app=create_app,
        add_default_commands=False,
        load_dotenv=False,
        set_debug_flag=False,
        help="videobatch: idempotent, credit-charging video batches.",
    )
    cli.main(prog_name="videobatch")
