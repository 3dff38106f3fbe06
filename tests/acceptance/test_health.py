"""``manage.py jobs health`` as a container probe runs it: a process, an exit code."""

import os
import subprocess
import sys

from tests.acceptance.conftest import ROOT, database_url, wait_for


def probe(*args: str, url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "jobs", "health", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": url,
        },
    )


def test_a_database_that_does_not_answer(tmp_path):
    done = probe(url="postgres://postgres@127.0.0.1:9/nowhere")
    assert done.returncode == 1
    assert done.stderr.startswith("unhealthy: database 'default' does not answer: ")
    assert len(done.stderr.strip().splitlines()) == 1
    empty = probe(url=f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    assert empty.returncode == 1
    assert "its job table cannot be read (did migrate run?)" in empty.stderr


def test_a_running_worker_makes_the_probe_pass(start_worker):
    url = database_url()
    assert probe("--worker", url=url).returncode == 1  # no worker yet
    worker = start_worker("--concurrency", "1")
    done = wait_for(
        lambda: (result := probe("--worker", url=url)).returncode == 0 and result,
        timeout=30,
        message="the probe to pass",
    )
    assert done.stdout.startswith("ok: database 'default' answers; worker ")
    worker.stop()
