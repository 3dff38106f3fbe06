"""A TCP proxy in front of the test database (PostgreSQL or MariaDB), for
workers whose database misbehaves.

Tests point a worker at the proxy and then make the database, as that
worker sees it, go away (connections cut, new ones refused), hang (nothing
answers, nothing is closed) or come back, without touching the PostgreSQL
server that every other test and process uses.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class DatabaseProxy:
    def __init__(
        self, target: tuple[str, int], scheme: str = "postgres", user: str = "postgres"
    ) -> None:
        self.target = target
        self.scheme, self.user = scheme, user
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.mode = "up"  # "up", "down" (refused) or "hung" (silent)
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def url(self, name: str, user: str | None = None) -> str:
        return f"{self.scheme}://{user or self.user}@127.0.0.1:{self.port}/{name}"

    def down(self) -> None:
        """Cut every connection; refuse new ones until ``up()``."""
        with self.lock:
            self.mode = "down"
            self._cut()

    def hang(self) -> None:
        """Stop relaying: every query waits forever, nothing is closed."""
        with self.lock:
            self.mode = "hung"

    def up(self) -> None:
        with self.lock:
            self.mode = "up"

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        with self.lock:
            self._cut()
        self.listener.close()

    def _cut(self) -> None:
        for pair in self.pairs:
            for end in pair:
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()
        self.pairs.clear()

    def serve(self) -> None:
        self.listener.settimeout(0.1)
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.mode == "down":
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self.lock:
                self.pairs.append((client, server))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(
                    target=self._pump, args=(source, sink), daemon=True
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                break
            if not data:
                break
            while self.mode == "hung" and not self.stopped.is_set():
                time.sleep(0.05)  # hold it: the other side waits forever
            try:
                sink.sendall(data)
            except OSError:
                break
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
