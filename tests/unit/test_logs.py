"""Log lines: JSON, redacted, and tagged with the request's correlation id."""

from __future__ import annotations

import json
import logging

from videobatch.logs import CORRELATION_HEADER, RedactingJsonFormatter, configure_logging


def formatted(message: str, *args, exc_info=None) -> dict:
    record = logging.LogRecord(
        "videobatch.test", logging.ERROR, __file__, 1, message, args, exc_info
    )
    return json.loads(RedactingJsonFormatter().format(record))


def test_api_keys_and_configured_secrets_are_redacted_everywhere_in_a_line():
    configure_logging("INFO", ["internal-secret-value", "short"])
    key = "vb_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"
    try:
        raise RuntimeError(f"bad key {key} with internal-secret-value")
    except RuntimeError as error:
        line = formatted("failed for %s", key, exc_info=(type(error), error, error.__traceback__))
    text = json.dumps(line)
    assert key not in text
    assert "internal-secret-value" not in text
    assert "vb_[redacted]" in line["message"]
    assert "[redacted]" in line["exc_info"]
    # Short values are not secrets; redacting them would mangle ordinary words.
    assert formatted("a short story")["message"] == "a short story"


def test_correlation_id_is_echoed_or_generated(client):
    echoed = client.get("/healthz", headers={CORRELATION_HEADER: "trace-42.a:b"})
    assert echoed.headers[CORRELATION_HEADER] == "trace-42.a:b"

    generated = client.get("/healthz")
    assert len(generated.headers[CORRELATION_HEADER]) == 32

    # Anything that could forge a log line or a header is replaced, not echoed.
    forged = client.get("/healthz", headers={CORRELATION_HEADER: 'x y\t{"level": "ERROR"}'})
    assert forged.headers[CORRELATION_HEADER] != 'x y\t{"level": "ERROR"}'
    assert len(forged.headers[CORRELATION_HEADER]) == 32


def test_each_request_logs_one_line_with_its_fields(client, caplog):
    with caplog.at_level(logging.INFO, logger="videobatch.request"):
        client.get("/readyz", headers={CORRELATION_HEADER: "one-line"})
    (record,) = [r for r in caplog.records if r.name == "videobatch.request"]
    assert record.method == "GET"
    assert record.route == "/readyz"
    assert record.status == 200
    assert record.duration_ms >= 0
    assert record.correlation_id == "one-line"
    assert record.account_id is None
