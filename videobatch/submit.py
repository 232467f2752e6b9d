"""``videobatch submit PROMPTS_FILE [--wait]``: a batch from a file, for people without code."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any, TextIO

import click

from videobatch.client import VideoBatchClient, VideoBatchError

TABLE_URL_WIDTH = 100


def read_items(lines: Iterable[str]) -> list[dict[str, Any]]:
    """Batch items from a prompts file: one prompt per line, or one JSON object per line.

    A line that starts with ``{`` is a JSON object with ``prompt`` and any per-item option
    (``duration_seconds``, ``aspect_ratio``, ``style``, ``negative_prompt``, ``seed``,
    ``client_ref``); any other non-blank line is a prompt as it stands.
    """
    items = []
    for number, line in enumerate(lines, start=1):
        text = line.rstrip("\r\n")
        if not text.strip():
            continue
        if text.lstrip().startswith("{"):
            try:
                item = json.loads(text)
            except ValueError as error:
                raise click.BadParameter(f"line {number}: not valid JSON ({error})") from None
            if not isinstance(item, dict) or "prompt" not in item:
                raise click.BadParameter(f"line {number}: a JSON line needs a 'prompt'")
            items.append(item)
        else:
            items.append({"prompt": text})
    if not items:
        raise click.BadParameter("the file holds no prompt")
    return items


def _parse_metadata(pairs: tuple[str, ...]) -> dict[str, str]:
    metadata = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--metadata")
        metadata[key] = value
    return metadata


def _ended(batch: dict[str, Any]) -> int:
    counts = batch["counts"]
    return counts["completed"] + counts["failed"] + counts["cancelled"]


def _progress_line(state: dict[str, Any]) -> str:
    failed = state["counts"]["failed"]
    return f"{_ended(state)}/{state['total_count']} ended, {failed} failed ({state['status']})"


def _follow(client: VideoBatchClient, batch: dict[str, Any], timeout: float | None) -> dict:
    """Wait for the batch, showing ended/total tasks and failures on stderr.

    A terminal gets a live bar; a pipe or a log file gets a line per change instead.
    """
    if not sys.stderr.isatty():
        last_line = ""

        def print_change(state: dict[str, Any]) -> None:
            nonlocal last_line
            line = _progress_line(state)
            if line != last_line:
                click.echo(f"videos: {line}", err=True)
                last_line = line

        return client.wait(batch["batch_id"], timeout=timeout, on_progress=print_change)

    with click.progressbar(
        length=batch["total_count"],
        label="videos",
        file=sys.stderr,
        show_pos=True,
        item_show_func=lambda text: text,
    ) as bar:
        shown = 0

        def advance(state: dict[str, Any]) -> None:
            nonlocal shown
            ended = _ended(state)
            failed = state["counts"]["failed"]
            bar.update(ended - shown, current_item=f"{failed} failed ({state['status']})")
            shown = ended

        return client.wait(batch["batch_id"], timeout=timeout, on_progress=advance)


def print_table(batch: dict[str, Any], out: TextIO) -> None:
    """One row per task: position, status, and the video URL or the error."""
    click.echo(f"{'#':>4}  {'status':<10}  video url / error", file=out)
    for task in batch["tasks"]:
        if task["video_url"]:
            result = task["video_url"]
        elif task["error"]:
            result = f"{task['error']['code']}: {task['error']['message'] or ''}".rstrip(": ")
        else:
            result = ""
        click.echo(
            f"{task['position']:>4}  {task['status']:<10}  {result[:TABLE_URL_WIDTH]}", file=out
        )
    counts = batch["counts"]
    click.echo(
        f"batch {batch['batch_id']} {batch['status']}: {counts['completed']} completed, "
        f"{counts['failed']} failed, {counts['cancelled']} cancelled",
        file=out,
    )


@click.command("submit")
@click.argument("prompts_file", type=click.File("r", encoding="utf-8"))
@click.option(
    "--url",
    envvar="VIDEOBATCH_URL",
    default="http://127.0.0.1:8000",
    show_default=True,
    help="The API's base URL (env VIDEOBATCH_URL).",
)
@click.option(
    "--api-key",
    envvar="VIDEOBATCH_API_KEY",
    required=True,
    help="Your API key (env VIDEOBATCH_API_KEY).",
)
@click.option(
    "--request-id",
    default=None,
    help="Send the same id again to resubmit safely (default: a new one).",
)
@click.option("--metadata", multiple=True, metavar="KEY=VALUE", help="Batch metadata; repeatable.")
@click.option("--wait", is_flag=True, help="Follow the batch to its end and print the videos.")
@click.option("--timeout", type=float, default=None, help="With --wait: give up after SECONDS.")
def submit(
    prompts_file: TextIO,
    url: str,
    api_key: str,
    request_id: str | None,
    metadata: tuple[str, ...],
    wait: bool,
    timeout: float | None,
) -> None:
    """Submit PROMPTS_FILE as one batch and print its id.

    One prompt per line, or JSON lines such as {"prompt": "...", "duration_seconds": 8}.
    With --wait, exits 1 if any video failed.
    """
    items = read_items(prompts_file)
    client = VideoBatchClient(url, api_key)
    try:
        batch = client.create_batch(items, _parse_metadata(metadata), request_id=request_id)
        click.echo(batch["batch_id"])
        replay = " (already submitted: replayed)" if batch["idempotent_replay"] else ""
        click.echo(
            f"{batch['total_count']} videos, {batch['required_credits']} credits, "
            f"{batch['available_credits']} left{replay}",
            err=True,
        )
        if not wait:
            return
        ended = _follow(client, batch, timeout)
    except VideoBatchError as error:
        raise click.ClickException(str(error)) from None
    print_table(ended, sys.stdout)
    if ended["counts"]["failed"]:
        sys.exit(1)
