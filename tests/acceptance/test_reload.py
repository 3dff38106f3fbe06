"""``runworker --reload``: a change to a Python file restarts the worker.

A real process: the watcher starts a worker, a file the worker imported is
touched, the old worker stops (its row goes) and a new one starts and runs
jobs. Ctrl-C (SIGINT to the terminal's process group) then stops both.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from django_jobs.models import Job, Worker
from tests import tasks
from tests.acceptance.conftest import ROOT, database_url, wait_for


@pytest.fixture
def project(tmp_path) -> Path:
    """Settings that import a module of the project's own, to be touched."""
    (tmp_path / "reload_probe.py").write_text("VALUE = 1\n")
    (tmp_path / "reload_settings.py").write_text(
        "from tests.settings import *  # noqa: F403\nimport reload_probe  # noqa\n"
    )
    return tmp_path


def worker_pids() -> set[int]:
    return set(Worker.objects.values_list("pid", flat=True))


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def test_touching_a_python_file_restarts_the_worker(transactional_db, project):
    log = project / "runworker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "reload_settings",
        "PYTHONPATH": f"{project}:{ROOT}",
        "DATABASE_URL": database_url(),
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, str(ROOT / "manage.py"), "runworker", "--reload"]
    command += ["--concurrency", "1", "--shutdown-timeout", "5"]
    seen: set[int] = set()
    with log.open("w") as output:
        watcher = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        (first,) = wait_for(worker_pids, timeout=60, message="the first worker")
        seen.add(first)
        time.sleep(1.5)  # let the watcher take its first look at the files
        probe = project / "reload_probe.py"
        later = time.time() + 5
        os.utime(probe, (later, later))

        def restarted() -> set[int]:
            pids = worker_pids()
            return pids if pids and first not in pids else set()

        (second,) = wait_for(restarted, timeout=60, message="a new worker")
        seen.add(second)
        assert watcher.poll() is None  # the same watcher, with fresh code
        output = log.read_text()
        assert f"{probe} changed; restarting the worker" in output

        result = tasks.add.enqueue(2, 3)
        wait_for(
            lambda: Job.objects.filter(pk=int(result.id), state="done").exists(),
            timeout=60,
            message="the job, run by the new worker",
        )
        assert Job.objects.get(pk=int(result.id)).reserved_by == ""

        os.killpg(watcher.pid, signal.SIGINT)  # Ctrl-C in a terminal
        assert watcher.wait(timeout=60) == 0
        assert worker_pids() == set()
    finally:
        kill_group(watcher.pid)
        for pid in seen:
            kill_group(pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            watcher.wait(timeout=10)
