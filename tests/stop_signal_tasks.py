"""Tasks for the tests of stop signals sent to every process of a worker.

A job that waits for a file lets a test signal the worker while the job is
surely running, then let it finish, with no race against a sleep.
"""

import os
import subprocess
import time

from django_jobs.compat import task

from .models import Record


@task
def wait_for_file(path: str, key: str, limit: float = 60) -> str:
    """Record the start, then wait (at most ``limit`` seconds) for ``path``."""
    Record.objects.create(key=key, pid=os.getpid())
    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never came")
        time.sleep(0.05)
    return "released"


def signals_in(mask: str) -> list[int]:
    """The signal numbers of a SigIgn/SigBlk mask of /proc/<pid>/status."""
    bits = int(mask, 16)
    return [number for number in range(1, 65) if bits & (1 << (number - 1))]


@task
def subprocess_signals() -> dict[str, list[int]]:
    """What a program the job runs inherits: its ignored and blocked signals."""
    status = subprocess.run(
        ["cat", "/proc/self/status"], capture_output=True, text=True, check=True
    ).stdout
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    return {
        "ignored": signals_in(fields["SigIgn"].strip()),
        "blocked": signals_in(fields["SigBlk"].strip()),
    }


@task
def trap_term_then_hang(path: str, key: str) -> None:
    """Start a shell in the job's process group that writes ``path`` when it
    gets SIGTERM; once its trap is set, record and hang (a ttr stops the job)."""
    script = f'trap "echo TERM > {path}; exit 0" TERM; echo set > {path}; '
    script += "sleep 300 & wait"
    shell = subprocess.Popen(["sh", "-c", script])
    deadline = time.monotonic() + 30
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    Record.objects.create(key=key, pid=os.getpid(), job_id=str(shell.pid))
    time.sleep(300)
