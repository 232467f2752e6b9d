"""Dependencies the tests may break: a TCP proxy that can be cut, and a throwaway Redis.

The shared PostgreSQL and Redis are never stopped: a test points the app at a proxy in front of
PostgreSQL, or at its own ``redis-server``, and cuts that instead.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from contextlib import suppress

from tests.conftest import free_port


class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``upstream``; ``cut()`` drops every connection and refuses
    new ones, ``hang()`` accepts connections but forwards nothing, ``restore()`` forwards again."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self.mode = "forward"
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed by cut()
            with self._lock:
                self._connections.append(client)
            if self.mode == "hang":
                continue  # hold the connection open, answer nothing
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections.append(upstream)
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, target), daemon=True).start()

    def _close_all(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            with suppress(OSError):  # already closed by its peer
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def cut(self) -> None:
        """Like a stopped server: open connections die and new ones are refused."""
        if self._listener is not None:
            # shutdown() first: on Linux, close() alone leaves a blocked accept() listening.
            with suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        self._close_all()

    def hang(self) -> None:
        """Like a stuck server: connections are accepted and never answered."""
        self._close_all()
        self.mode = "hang"
        if self._listener is None:
            self.start()

    def restore(self) -> None:
        self._close_all()
        self.mode = "forward"
        if self._listener is None:
            self.start()


def _pump(source: socket.socket, target: socket.socket) -> None:
    with suppress(OSError):  # a side was closed (by its peer or by cut()): this direction ends
        while data := source.recv(65536):
            target.sendall(data)
    with suppress(OSError):
        target.shutdown(socket.SHUT_WR)


class ThrowawayRedis:
    """A ``redis-server`` of our own on a free port, which may be stopped and started again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> ThrowawayRedis:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is needed on PATH for the outage tests"
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None
