"""docs/API.md documents every error code the service can answer with."""

from __future__ import annotations

import re
from pathlib import Path

from videobatch import errors

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "API.md"


def all_api_errors(cls: type[errors.APIError]) -> list[type[errors.APIError]]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(all_api_errors(sub))
    return found


def documented_rows() -> list[tuple[str, str]]:
    return re.findall(r"^\| (\d{3}|any) \| `([a-z_]+)` \|", API_DOC.read_text(), re.M)


def test_every_error_code_is_in_the_table():
    codes = {error.code for error in all_api_errors(errors.APIError)}
    codes |= set(errors.HTTP_CODES.values())
    source = Path(errors.__file__).read_text()
    codes |= set(re.findall(r'"([a-z_]+_error)"', source))  # internal_error, http_error, ...
    documented = {code for _, code in documented_rows()}
    assert codes - documented == set()


def test_statuses_in_the_table_match_the_errors():
    rows = documented_rows()
    for error in all_api_errors(errors.APIError):
        assert (str(error.status), error.code) in rows, error.code
    for status, code in errors.HTTP_CODES.items():
        assert (str(status), code) in rows, code
