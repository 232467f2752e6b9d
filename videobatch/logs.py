"""Logs: one JSON object per line, tagged with the request's correlation id, free of secrets.

``configure_logging`` is the one place logging is set up (``create_app`` calls it; gunicorn's
own loggers use the formatters below through ``gunicorn.conf.py``). Every line passes through
``redact``, which removes anything shaped like an API key and the configured secrets, so a
secret that slips into an exception message still never reaches the log.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from collections.abc import Iterable
from typing import Any

from flask import Flask, Response, g, has_request_context, request
from pythonjsonlogger.json import JsonFormatter

log = logging.getLogger("videobatch.request")

CORRELATION_HEADER = "X-Correlation-Id"
# What we accept from a client as a correlation id: short and safe to echo into logs and headers.
CORRELATION_ID_PATTERN = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
API_KEY_PATTERN = re.compile(r"vb_[A-Za-z0-9_\-]{16,}")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
RENAMED_FIELDS = {"asctime": "time", "levelname": "level", "name": "logger"}

MIN_SECRET_LENGTH = 8

_secrets: list[str] = []


def redact(text: str) -> str:
    """``text`` with API keys and the configured secrets replaced."""
    text = API_KEY_PATTERN.sub("vb_[redacted]", text)
    for secret in _secrets:
        text = text.replace(secret, "[redacted]")
    return text


class RedactingJsonFormatter(JsonFormatter):
    """A JSON line per record, redacted after rendering so no field escapes it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("rename_fields", RENAMED_FIELDS)
        super().__init__(LOG_FORMAT, *args, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class GunicornAccessFormatter(RedactingJsonFormatter):
    """gunicorn's access log as JSON fields (gunicorn passes its atoms as the record's args)."""

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        atoms = record.args if isinstance(record.args, dict) else {}
        log_data.update(
            event="access",
            remote=atoms.get("h"),
            method=atoms.get("m"),
            path=atoms.get("U"),
            status=_int_or_none(atoms.get("s")),
            bytes=_int_or_none(atoms.get("B")),
            duration_ms=round(float(atoms.get("L") or 0) * 1000, 2),
            user_agent=atoms.get("a"),
            correlation_id=atoms.get("{x-correlation-id}o"),
        )


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class RequestContextFilter(logging.Filter):
    """Adds the current request's correlation id to every record logged while serving it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context() and not hasattr(record, "correlation_id"):
            record.correlation_id = g.get("correlation_id")
        return True


class StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    @property
    def stream(self) -> Any:  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        del value  # always sys.stderr


def configure_logging(level: str, secrets: Iterable[str] = ()) -> None:
    """JSON lines on stderr for the root logger; ``secrets`` are scrubbed from every line."""
    # Short values would redact ordinary words; real secrets are long random strings.
    _secrets[:] = sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, StderrHandler):
            root.removeHandler(handler)
    handler = StderrHandler()
    handler.setFormatter(RedactingJsonFormatter())
    handler.addFilter(RequestContextFilter())
    root.addHandler(handler)
    root.setLevel(level.upper())


def register_request_logging(app: Flask) -> None:
    """Give each request a correlation id (echoed back) and log one line when it is answered."""

    @app.before_request
    def start_request() -> None:
        g.request_started = time.perf_counter()
        incoming = request.headers.get(CORRELATION_HEADER, "")
        g.correlation_id = (
            incoming if CORRELATION_ID_PATTERN.fullmatch(incoming) else uuid.uuid4().hex
        )

    @app.after_request
    def log_request(response: Response) -> Response:
        correlation_id = g.get("correlation_id") or uuid.uuid4().hex
        response.headers[CORRELATION_HEADER] = correlation_id
        started = g.get("request_started")
        caller = g.get("caller")
        log.info(
            "%s %s %s",
            request.method,
            request.path,
            response.status_code,
            extra={
                "event": "request",
                "method": request.method,
                "route": request.url_rule.rule if request.url_rule else None,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2)
                if started
                else None,
                "account_id": str(caller.account_id) if caller else None,
                "request_id": g.get("request_id"),
                "correlation_id": correlation_id,
            },
        )
        return response
