"""Paths a real worker can never import are buried at once; a path a deploy
may bring waits out IMPORT_GRACE, tried again 1, 2, 4 s later (doubling)."""

import pytest
from django.db import connection  # noqa: F401  (the skipif condition's)
from django.utils.dateparse import parse_datetime

from django_jobs import queue
from django_jobs.models import Job
from tests.acceptance.conftest import wait_for
from tests.integration.conftest import write_by_hand

NEVER = [
    "django.core.management.commands.shell.adhoc.send_welcome",
    "django.core.management.commands.shell.send_welcome",
    "__main__.send_welcome",
    "not a path",
    "shop.tasks.<locals>.send",
]


def test_a_path_no_deploy_can_bring_is_buried_after_its_first_attempt(
    start_worker,
):
    jobs = {}
    for path in NEVER:
        job = queue.enqueue(task_path="tests.tasks.noop", max_attempts=3)
        write_by_hand(job.pk, "task_path", path)  # as an operator's SQL might
        jobs[path] = job.pk
    worker = start_worker("--burst")
    assert worker.wait() == 0, worker.output

    for path, pk in jobs.items():
        job = Job.objects.get(pk=pk)
        assert (job.state, job.attempts, len(job.errors)) == ("buried", 1, 1), path
        (error,) = job.errors
        assert error["exception_class_path"] == (
            "django_jobs.exceptions.TaskNeverImportable"
        )
        assert f"{path!r} can never be imported by a worker" in error["traceback"]
    assert "tried again" not in worker.output
    assert "deploy may be in progress" not in worker.output


@pytest.mark.skipif("connection.vendor != 'sqlite'")  # 12 s: one database
def test_a_missing_module_gets_the_grace_with_its_documented_backoff(start_worker):
    job = queue.enqueue(task_path="app_not_deployed_yet.tasks.f", max_attempts=1)
    worker = start_worker(
        "--poll-interval",
        "0.1",
        DJANGO_SETTINGS_MODULE="tests.import_grace_settings",
    )
    delays: dict[int, float] = {}  # try -> run_at minus the time of its error

    def buried() -> bool:
        row = Job.objects.get(pk=job.pk)
        if row.state == "ready" and row.errors:
            at = parse_datetime(row.errors[-1]["at"])
            delays[len(row.errors)] = (row.run_at - at).total_seconds()
        return row.state == "buried"

    wait_for(buried, timeout=60, message="the job buried after IMPORT_GRACE")
    row = Job.objects.get(pk=job.pk)
    assert {e["exception_class_path"] for e in row.errors} == {
        "django_jobs.exceptions.TaskNotImportable"
    }
    # Doubling from 1 s, whatever RETRY_BACKOFF (10 s here); the last wait is
    # cut to what is left of the grace (12 s here).
    assert [round(delays[n]) for n in sorted(delays)][:3] == [1, 2, 4], delays
    assert all(delays[n] < 8 for n in delays if n > 3), delays
    for seconds in (1, 2, 4):
        assert f"tried again in {seconds} s, the attempt not counted" in (worker.output)
    assert "buried: not importable for" in worker.output
    assert "(IMPORT_GRACE is 12 s)" in worker.output
