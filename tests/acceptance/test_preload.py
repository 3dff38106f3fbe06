"""Tasks in any module are imported once, by the fork server, not per child."""

from collections import Counter

import pytest

from django_jobs import queue
from django_jobs.models import Job


def greet_in_a_worker(start_worker, log, count: int, settings: str, *args: str):
    """Run ``count`` jobs of tests.elsewhere (which writes down each import
    in ``log``) through one burst worker; the worker, once all are greeted."""
    jobs = [
        queue.enqueue(task_path="tests.elsewhere.greet", args=[f"n{i}"])
        for i in range(count)
    ]
    worker = start_worker(
        "--burst",
        "--concurrency",
        "1",
        *args,
        JOBS_IMPORT_LOG=str(log),
        DJANGO_SETTINGS_MODULE=settings,
    )
    assert worker.wait(timeout=60) == 0, worker.output
    assert [Job.objects.get(pk=j.pk).return_value for j in jobs] == [
        f"hello n{i}" for i in range(count)
    ]
    return worker


def test_a_task_module_no_tasks_py_imports_is_imported_once(start_worker, tmp_path):
    log = tmp_path / "imports"
    # No LOGGING in these settings, so that -v 3 counts.
    worker = greet_in_a_worker(
        start_worker, log, 20, "tests.nologging_settings", "-v", "3"
    )
    imports = Counter(log.read_text().split())
    # The fork server's probe, the fork server, and the children forked
    # before it had imported the module (one or two): never one per job.
    assert sum(imports.values()) <= 5, imports
    assert "the fork server imported tests.elsewhere" in worker.output


def test_the_modules_of_scheduled_tasks_are_imported_at_start(start_worker, tmp_path):
    log = tmp_path / "imports"
    worker = greet_in_a_worker(start_worker, log, 5, "tests.scheduled_settings")
    # Imported once, by the supervisor before it forked the fork server:
    # no probe, no import by the fork server or by any child.
    assert log.read_text().split() == [str(worker.pid)]


@pytest.mark.parametrize(
    ("module", "why"),
    [
        ("tests.threaded", "it starts a thread"),
        ("tests.connecting", "it opens a database connection"),
        ("tests.sockety", "it opens a socket"),
    ],
)
def test_a_module_unsafe_to_fork_is_left_to_the_children(start_worker, module, why):
    jobs = [queue.enqueue(task_path=f"{module}.ping") for _ in range(3)]
    worker = start_worker("--burst", "--concurrency", "1")
    assert worker.wait(timeout=60) == 0, worker.output
    assert {Job.objects.get(pk=j.pk).return_value for j in jobs} == {"pong"}
    assert (
        f"task module {module} is imported by each child, not once by the "
        f"fork server: {why}" in worker.output
    )
