"""Bad command-line values end with one line of error, never a traceback."""

import subprocess
import sys

import pytest

from tests.acceptance.conftest import ROOT


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--concurrency", "0"],
            "--concurrency must be a whole number of at least 1, got '0'",
        ),
        (
            ["--concurrency", "two"],
            "--concurrency must be a whole number of at least 1",
        ),
        (["--concurrency", "16:2"], "--concurrency MIN:MAX must have MIN at most MAX"),
        (["--concurrency", "4:"], "--concurrency must be N or MIN:MAX, whole numbers"),
        (["--jobs-per-child", "-1"], "--jobs-per-child must be a whole number"),
        (["--max-jobs", "1.5"], "--max-jobs must be a whole number"),
        (
            ["--poll-interval", "0"],
            "--poll-interval must be a number of seconds (more than zero)",
        ),
        (["--poll-interval", "nan"], "--poll-interval must be a number of seconds"),
        (
            ["--shutdown-timeout", "-3"],
            "--shutdown-timeout must be a number of seconds (zero or more)",
        ),
        (["--backend", "nope"], "--backend 'nope' is not a key of the TASKS setting"),
        (["--max-memory", "lots"], "--max-memory: a size is a number of bytes"),
        (["--max-cpu-seconds", "0"], "--max-cpu-seconds: a CPU time is a number"),
        (
            ["--backend", "strict", "--queue", "reports"],
            "--queue 'reports' is not one of",
        ),
    ],
)
def test_bad_values(args, message):
    completed = subprocess.run(
        [sys.executable, "manage.py", "runworker", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"DJANGO_SETTINGS_MODULE": "tests.settings", "PATH": "/usr/bin:/bin"},
    )
    assert completed.returncode != 0
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert message in lines[0]
    assert "Traceback" not in completed.stderr
