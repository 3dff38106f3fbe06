"""``manage.py jobs ... | head``: when the reader of the output goes away,
the command ends quietly, as Unix tools do (no traceback; the status of a
process that SIGPIPE stopped, 141 in a shell)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from django_jobs import queue
from tests.acceptance.conftest import ROOT, database_url

SIGPIPE_STATUS = 141


def jobs(*args: str, stdout) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "jobs", *args],
        cwd=ROOT,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": database_url(),
        },
    )


@pytest.mark.parametrize(
    "args",
    [
        ["stats"],
        ["stats", "--json"],
        ["list"],
        ["show", "{id}"],
        ["show", "{id}", "--json"],
        ["health"],
    ],
)
def test_a_reader_gone_before_the_output(transactional_db, args):
    """As ``jobs list | true``: nobody reads at all."""
    job = queue.enqueue(task_path="tests.tasks.tick", args=["x"])
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        command = jobs(*(a.format(id=job.pk) for a in args), stdout=write_end)
    finally:
        os.close(write_end)
    _, err = command.communicate(timeout=120)
    assert (command.returncode, err) == (SIGPIPE_STATUS, "")


def test_a_reader_that_stops_after_the_first_line(transactional_db):
    """As ``jobs show 12 | head -1``, with more output than a pipe holds."""
    job = queue.enqueue(task_path="tests.tasks.tick", args=list(range(30_000)))
    command = jobs("show", str(job.pk), stdout=subprocess.PIPE)
    assert command.stdout.readline() == f"Job {job.pk}: tests.tasks.tick\n"
    command.stdout.close()
    command.stdout = None  # read no more
    _, err = command.communicate(timeout=120)
    assert (command.returncode, err) == (SIGPIPE_STATUS, "")
