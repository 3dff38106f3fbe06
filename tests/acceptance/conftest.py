"""Real ``runworker`` processes against the test database.

Every process a test starts is registered here and killed (with its process
group) when the test ends, whatever happened. Every wait has a timeout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import connection

from tests.acceptance.dbproxy import DatabaseProxy

ROOT = Path(__file__).resolve().parent.parent.parent


#: A server database's URL scheme, default user and port, by vendor.
SERVERS = {
    "postgresql": ("postgres", "postgres", 5432),
    "mysql": ("mysql", "root", 3306),
}


def database_url() -> str:
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    scheme, user, port = SERVERS[connection.vendor]
    user = settings.get("USER") or user
    if settings.get("PASSWORD"):
        user += f":{settings['PASSWORD']}"
    host = settings.get("HOST") or "127.0.0.1"
    port = settings.get("PORT") or port
    return f"{scheme}://{user}@{host}:{port}/{settings['NAME']}"


class Worker:
    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115  (closed in stop)
            prefix="runworker-", suffix=".log", delete=False
        )
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "runworker", *args],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.process.pid

    @property
    def output(self) -> str:
        return Path(self.log.name).read_text()

    def send(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"worker {self.pid} still running after {timeout}s:\n{self.output}"
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


@pytest.fixture
def start_worker(transactional_db) -> Callable[..., Worker]:
    """Start ``manage.py runworker`` with the given arguments."""
    started: list[Worker] = []
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "PYTHONUNBUFFERED": "1",
    }

    def start(*args: str, database_url: str | None = None, **variables: str) -> Worker:
        """``database_url``: another way to the test database (a proxy);
        ``variables``: more environment (``DJANGO_SETTINGS_MODULE=...``)."""
        worker_env = {**env, **variables}
        if database_url:
            worker_env["DATABASE_URL"] = database_url
        worker = Worker(list(args), worker_env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def proxy(transactional_db):
    """A proxy in front of the test database that a test can cut."""
    settings = connection.settings_dict
    scheme, user, port = SERVERS[connection.vendor]
    target = (settings.get("HOST") or "127.0.0.1", int(settings.get("PORT") or port))
    proxy = DatabaseProxy(target, scheme, settings.get("USER") or user)
    proxy.name = settings["NAME"]
    yield proxy
    proxy.close()


def wait_for(condition: Callable[[], object], timeout: float = 30, message: str = ""):
    """Poll ``condition`` until it returns something truthy, or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout}s waiting for {message or condition}")


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent has not reaped it yet.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def most_at_once(events) -> int:
    """The most things running at once, from (time, +1 at a start or -1 at
    an end) events; at equal times an end comes first (no overlap)."""
    running = peak = 0
    for _, change in sorted(events):
        running += change
        peak = max(peak, running)
    return peak


def worker_connections() -> int:
    """Connections to the test database other than this test's own."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]
