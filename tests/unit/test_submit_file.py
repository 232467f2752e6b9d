"""Reading a prompts file for ``videobatch submit``."""

from __future__ import annotations

import click
import pytest

from videobatch.submit import read_items


def test_plain_lines_are_prompts_and_blank_lines_are_skipped():
    lines = ["A city at sunset\n", "\n", "   \n", "  A forest, {misty}  \r\n"]
    assert read_items(lines) == [
        {"prompt": "A city at sunset"},
        {"prompt": "  A forest, {misty}  "},
    ]


def test_json_lines_carry_per_item_options():
    lines = ['{"prompt": "A", "duration_seconds": 8, "client_ref": "row-1"}\n', "B\n"]
    assert read_items(lines) == [
        {"prompt": "A", "duration_seconds": 8, "client_ref": "row-1"},
        {"prompt": "B"},
    ]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["ok\n", "{not json\n"], "line 2: not valid JSON"),
        (['{"style": "noir"}\n'], "line 1: a JSON line needs a 'prompt'"),
        (["\n", "  \n"], "no prompt"),
    ],
)
def test_bad_files_are_refused_with_the_line(lines, message):
    with pytest.raises(click.BadParameter, match=message):
        read_items(lines)
