"""``runworker --reload`` restarts for a task module only a job imported.

A module outside ``tasks.py`` that no schedule names is imported by the
first child that runs one of its jobs, then by the fork server (see
worker/preload.py): never by the watcher. The worker's processes tell the
watcher which files they import, so an edit to such a module restarts the
worker and the next job runs the new code. Real processes: the watcher, its
worker, the fork server and the children; every wait is bounded and every
process is killed at the end.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import pytest

from django_jobs.models import Job
from tests.acceptance.conftest import wait_for
from tests.acceptance.reloading import kill_all, start_watcher, worker_pids

pytestmark = pytest.mark.database_agnostic

SOURCE = """from django_jobs.compat import task


@task
def version() -> str:
    return "v{n}"
"""


def write_version(path: Path, n: int, stamp: float) -> None:
    """The module returns "v<n>"; its mtime is ``stamp`` (whole seconds
    apart from the last edit's, as Python's bytecode cache needs)."""
    path.write_text(SOURCE.format(n=n))
    os.utime(path, (stamp, stamp))


def run_version(task) -> str:
    result = task.enqueue()
    job = wait_for(
        lambda: Job.objects.filter(pk=int(result.id), state="done").first(),
        timeout=60,
        message=f"job {result.id} to be done",
    )
    return job.return_value


def test_editing_a_module_that_only_a_job_imported_restarts_the_worker(
    transactional_db, tmp_path, monkeypatch
):
    name = f"reload_target_{uuid.uuid4().hex[:12]}"
    module_file = tmp_path / f"{name}.py"
    stamp = time.time() - 100
    write_version(module_file, 1, stamp)
    monkeypatch.syspath_prepend(str(tmp_path))
    task = importlib.import_module(name).version  # the same path the worker runs
    log = tmp_path / "runworker.log"
    seen: set[int] = set()
    watcher = start_watcher("tests.settings", tmp_path, log)
    try:
        (worker,) = wait_for(worker_pids, timeout=60, message="the first worker")
        seen.add(worker)
        assert run_version(task) == "v1"
        for n in (2, 3, 4):
            write_version(module_file, n, stamp + 10 * n)

            def restarted(old: int = worker) -> set[int]:
                pids = worker_pids()
                return pids if pids and old not in pids else set()

            (worker,) = wait_for(
                restarted, timeout=60, message=f"a new worker after edit v{n}"
            )
            seen.add(worker)
            assert run_version(task) == f"v{n}", log.read_text()
        assert f"{module_file} changed; restarting the worker" in log.read_text()
        assert watcher.poll() is None  # the same watcher throughout

        os.killpg(watcher.pid, signal.SIGINT)  # Ctrl-C in a terminal
        assert watcher.wait(timeout=60) == 0
    finally:
        sys.modules.pop(name, None)
        kill_all(watcher, seen)
