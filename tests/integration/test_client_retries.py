"""The Python client against a live gunicorn, through a proxy that loses answers on purpose."""

from __future__ import annotations

import http.server
import threading
import time

import pytest
import requests

from tests.factories import batch_body, ledger_state, make_account
from videobatch.client import (
    AuthenticationFailed,
    IdempotencyKeyReused,
    InsufficientCredits,
    InvalidRequest,
    NotFound,
    ServerError,
    TransportError,
    VideoBatchClient,
)

pytestmark = pytest.mark.services

CLIENT_TIMEOUT = 1.0


class FaultyProxy:
    """Forwards to the server; the first creates reach it but their answers are lost.

    ``faults`` lists, per create, what happens after the server has answered: ``drop`` closes
    the connection without a word, ``stall`` holds the answer past the client's timeout, ``502``
    replaces it with a gateway error. Creates beyond the list pass through.
    """

    def __init__(self, upstream: str, faults: list[str]) -> None:
        self.upstream = upstream
        self.faults = list(faults)
        self.creates_forwarded = 0
        self.stalls = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # the test output is not the place for access logs
                pass

            def do_GET(self):
                self._forward()

            def do_POST(self):
                self._forward()

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {
                    key: value for key, value in self.headers.items() if key.lower() != "host"
                }
                answer = requests.request(
                    self.command, proxy.upstream + self.path, data=body, headers=headers, timeout=30
                )
                fault = None
                if self.command == "POST" and self.path == "/api/enterprise/video-batch":
                    proxy.creates_forwarded += 1
                    fault = proxy.faults.pop(0) if proxy.faults else None
                if fault == "drop":
                    self.close_connection = True
                    return
                if fault == "stall":
                    proxy.stalls.wait(CLIENT_TIMEOUT * 3)
                    self.close_connection = True
                    return
                status = 502 if fault == "502" else answer.status_code
                content = b"<html>bad gateway</html>" if fault == "502" else answer.content
                self.send_response(status)
                for key, value in answer.headers.items():
                    if key.lower() in ("content-type", "retry-after", "idempotent-replayed"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultyProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stalls.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def account(live_server):
    return make_account(live_server.app, credits=1000)


def fast_client(url: str, api_key: str, **options) -> VideoBatchClient:
    return VideoBatchClient(
        url,
        api_key,
        timeout=CLIENT_TIMEOUT,
        backoff_initial=0.05,
        backoff_max=0.2,
        **options,
    )


def test_lost_answers_after_commit_end_with_one_batch_and_one_charge(live_server, account):
    with FaultyProxy(live_server.url, ["drop", "stall", "502"]) as proxy:
        client = fast_client(proxy.url, account.api_key)
        started = time.monotonic()
        batch = client.create_batch(batch_body(3)["items"], {"campaign": "retry"})
        elapsed = time.monotonic() - started
    assert proxy.creates_forwarded == 4  # every attempt reached the server
    assert batch["idempotent_replay"] is True
    assert batch["total_count"] == 3
    state = ledger_state(live_server.app, account.account_id)
    assert state == {"balance": 970, "ledger_sum": 970, "charges": 1, "batches": 1, "tasks": 3}
    direct = fast_client(live_server.url, account.api_key)
    assert direct.get_batch(batch["batch_id"])["counts"]["queued"] == 3
    assert elapsed < 10


def test_retries_give_up_with_a_typed_error(live_server, account):
    with FaultyProxy(live_server.url, ["502", "502", "502"]) as proxy:
        client = fast_client(proxy.url, account.api_key, max_attempts=3)
        with pytest.raises(ServerError) as raised:
            client.create_batch(batch_body(1)["items"])
    assert raised.value.status == 502
    assert proxy.creates_forwarded == 3
    # The server made the batch on the first attempt and replayed it twice: still one charge.
    assert ledger_state(live_server.app, account.account_id)["charges"] == 1


def test_unreachable_server_is_a_transport_error(account):
    client = fast_client("http://127.0.0.1:9", account.api_key, max_attempts=2)
    with pytest.raises(TransportError):
        client.get_batch("00000000-0000-0000-0000-000000000000")


def test_client_errors_are_typed_and_not_retried(live_server, account):
    client = fast_client(live_server.url, account.api_key)
    with pytest.raises(InsufficientCredits) as short:
        client.create_batch(batch_body(101)["items"])
    assert (short.value.required_credits, short.value.available_credits) == (1010, 1000)
    client.create_batch(batch_body(1)["items"], request_id="fixed-id")
    with pytest.raises(IdempotencyKeyReused):
        client.create_batch(batch_body(2)["items"], request_id="fixed-id")
    with pytest.raises(InvalidRequest) as invalid:
        client.create_batch([{"prompt": ""}])
    assert "items" in invalid.value.errors
    with pytest.raises(NotFound):
        client.get_batch("00000000-0000-0000-0000-000000000000")
    with pytest.raises(AuthenticationFailed):
        fast_client(live_server.url, "vb_" + "x" * 40).credits()


def test_wait_polls_until_the_batch_ends(live_server, account):
    client = fast_client(live_server.url, account.api_key)
    batch = client.create_batch(batch_body(2)["items"])
    seen: list[str] = []
    threading.Timer(0.3, client.cancel_batch, args=(batch["batch_id"],)).start()
    ended = client.wait(
        batch["batch_id"],
        poll_initial=0.05,
        poll_max=0.2,
        on_progress=lambda b: seen.append(b["status"]),
    )
    assert ended["status"] == "cancelled"
    assert seen[0] == "queued" and seen[-1] == "cancelled"
    assert client.credits()["available_credits"] == 1000
    pages = list(client.iter_batches(page_size=1))
    assert [page["batch_id"] for page in pages] == [batch["batch_id"]]
