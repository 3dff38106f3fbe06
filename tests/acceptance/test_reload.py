"""``runworker --reload``: a change to a Python file restarts the worker.

A real process: the watcher starts a worker, a file the worker imported is
touched, the old worker stops (its row goes) and a new one starts and runs
jobs. Ctrl-C (SIGINT to the terminal's process group) then stops both.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from django_jobs.models import Job
from tests import tasks
from tests.acceptance.conftest import wait_for
from tests.acceptance.reloading import kill_all, start_watcher, worker_pids

pytestmark = pytest.mark.database_agnostic


@pytest.fixture
def project(tmp_path) -> Path:
    """Settings that import a module of the project's own, to be touched."""
    (tmp_path / "reload_probe.py").write_text("VALUE = 1\n")
    (tmp_path / "reload_settings.py").write_text(
        "from tests.settings import *  # noqa: F403\nimport reload_probe  # noqa\n"
    )
    return tmp_path


def test_touching_a_python_file_restarts_the_worker(transactional_db, project):
    log = project / "runworker.log"
    seen: set[int] = set()
    watcher = start_watcher("reload_settings", project, log)
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
        kill_all(watcher, seen)
