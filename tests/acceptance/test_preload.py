"""Tasks in any module are imported once, by the fork server, not per child."""

import signal

import pytest

from django_jobs import queue
from django_jobs.models import Job
from django_jobs.states import State
from tests.acceptance.conftest import wait_for


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


def test_a_task_module_no_tasks_py_imports_is_imported_once(start_worker):
    """Once the fork server has imported a task module, every child forked
    after that inherits it. How many children were forked before the import
    landed depends on the machine's speed, so the jobs counted are those
    enqueued after it landed: with one slot, only the spare child forked
    ahead before then may still import the module itself."""
    path = "tests.preload_witness.where"
    queue.enqueue(task_path=path)  # its job has the fork server import it
    # No LOGGING in these settings, so that -v 3 counts.
    worker = start_worker(
        "--concurrency",
        "1",
        "-v",
        "3",
        DJANGO_SETTINGS_MODULE="tests.nologging_settings",
    )
    wait_for(
        lambda: "the fork server imported tests.preload_witness" in worker.output,
        timeout=60,
        message="the fork server's import",
    )
    ids = [queue.enqueue(task_path=path).pk for _ in range(10)]
    done = Job.objects.filter(pk__in=ids, state=State.DONE)
    wait_for(lambda: done.count() == len(ids), timeout=60, message="the jobs")
    worker.send(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0, worker.output
    ran = [Job.objects.get(pk=pk).return_value for pk in ids]  # in claim order
    pids = {r["pid"] for r in ran}
    assert len(pids) == len(ids), ran  # a child per job
    imported_itself = [r["imported_by"] == r["pid"] for r in ran]
    assert imported_itself[1:] == [False] * (len(ids) - 1), ran
    inherited = {r["imported_by"] for r in ran if r["imported_by"] != r["pid"]}
    # One process imported it for all of them: not the supervisor, not a child.
    assert len(inherited) == 1, ran
    assert inherited.isdisjoint({worker.pid, *pids})


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
