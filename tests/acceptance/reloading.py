"""A ``runworker --reload`` watcher for tests: started in a session of its
own, its workers seen by their rows, and every process killed at the end."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from django_jobs.models import Worker
from tests.acceptance.conftest import ROOT, database_url


def worker_pids() -> set[int]:
    return set(Worker.objects.values_list("pid", flat=True))


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def start_watcher(settings: str, path: Path, log: Path) -> subprocess.Popen:
    """``runworker --reload`` with ``settings``, ``path`` first on its
    PYTHONPATH, writing to ``log``."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings,
        "PYTHONPATH": f"{path}:{ROOT}",
        "DATABASE_URL": database_url(),
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, str(ROOT / "manage.py"), "runworker", "--reload"]
    command += ["--concurrency", "1", "--shutdown-timeout", "5"]
    with log.open("w") as output:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill_all(watcher: subprocess.Popen, workers: set[int]) -> None:
    """Whatever the test left running: the watcher and every worker it had."""
    kill_group(watcher.pid)
    for pid in workers:
        kill_group(pid)
    with contextlib.suppress(subprocess.TimeoutExpired):
        watcher.wait(timeout=10)
