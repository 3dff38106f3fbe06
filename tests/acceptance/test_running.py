"""A worker runs jobs in child processes and records every outcome."""

import os
import re
from pathlib import Path

from django_jobs import queue
from django_jobs.compat import TASKS_MODULE, TaskResultStatus
from django_jobs.exceptions import ReturnValueNotStored
from django_jobs.models import Job, Worker
from tests import tasks
from tests.acceptance.conftest import most_at_once as peak
from tests.models import Record


def test_burst_runs_every_ready_job_and_exits(start_worker):
    results = [tasks.add.enqueue(i, i) for i in range(5)]
    worker = start_worker("--burst", "--concurrency", "2")
    assert worker.wait() == 0, worker.output
    for i, result in enumerate(results):
        result.refresh()
        assert result.status == TaskResultStatus.SUCCESSFUL
        assert result.return_value == 2 * i
        assert result.attempts == 1
    assert not Worker.objects.exists()  # deregistered on exit


def test_each_job_runs_in_a_fresh_child_process(start_worker):
    for i in range(4):
        tasks.record_pid.enqueue(f"job{i}")
    worker = start_worker("--burst", "--concurrency", "2")
    assert worker.wait() == 0, worker.output
    pids = set(Record.objects.values_list("pid", flat=True))
    assert len(pids) == 4
    assert worker.pid not in pids


def test_jobs_per_child_reuses_children(start_worker):
    for i in range(6):
        tasks.record_pid.enqueue(f"job{i}")
    worker = start_worker("--burst", "--concurrency", "1", "--jobs-per-child", "3")
    assert worker.wait() == 0, worker.output
    assert Record.objects.values("pid").distinct().count() == 2


def test_failures_are_retried_then_buried_with_every_error(start_worker):
    result = tasks.fail.using(max_attempts=3).enqueue("nope")
    worker = start_worker("--burst")
    assert worker.wait() == 0, worker.output
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 3
    assert len(result.errors) == 3
    assert all(e.exception_class is ValueError for e in result.errors)
    assert result.errors[-1].traceback.endswith("ValueError: nope\n")
    assert re.search(
        r"\(attempt 3/3\): failed after [\d.]+ ms: ValueError: nope; buried",
        worker.output,
    )


def test_on_failure_delete(start_worker):
    result = tasks.fail.using(max_attempts=1, on_failure="delete").enqueue()
    worker = start_worker("--burst")
    assert worker.wait() == 0, worker.output
    assert not Job.objects.filter(pk=result.id).exists()


def test_async_tasks_context_and_odd_outcomes(start_worker):
    async_result = tasks.async_add.enqueue(2, 3)
    context_result = tasks.with_context.enqueue(7)
    exit_result = tasks.raise_system_exit.using(max_attempts=1).enqueue()
    complex_result = tasks.unserialisable_return.using(max_attempts=1).enqueue()
    worker = start_worker("--burst")
    assert worker.wait() == 0, worker.output
    for result in (async_result, context_result, exit_result, complex_result):
        result.refresh()
    assert async_result.return_value == 5
    assert context_result.return_value == 7
    assert exit_result.errors[0].exception_class is SystemExit
    assert complex_result.errors[0].exception_class is ReturnValueNotStored
    assert (
        "the return value is an object, which cannot be stored as JSON"
        in complex_result.errors[0].traceback
    )


def test_signals_and_logs_name_the_job(start_worker):
    result = tasks.add.enqueue(1, 1)
    worker = start_worker("--burst")
    assert worker.wait() == 0, worker.output
    output = worker.output
    # django.tasks' own receivers log task_started and task_finished.
    assert f"Task id={result.id} path=tests.tasks.add state=RUNNING" in output
    assert f"Task id={result.id} path=tests.tasks.add state=SUCCESSFUL" in output
    assert f"job {result.id} tests.tasks.add (attempt 1/3): done in" in output


def test_a_row_naming_os_system_is_buried_and_never_called(start_worker, tmp_path):
    marker = tmp_path / "owned"
    job = queue.enqueue(task_path="os.system", args=[f"touch {marker}"])
    good = tasks.add.enqueue(1, 2)
    worker = start_worker("--burst")
    assert worker.wait() == 0, worker.output
    assert not Path(marker).exists()
    job.refresh_from_db()
    assert job.state == "buried"
    assert job.attempts == 1  # buried at once, not retried
    assert (
        job.errors[0]["exception_class_path"] == "django_jobs.exceptions.TaskNotFound"
    )
    assert f"not a {TASKS_MODULE}.Task" in job.errors[0]["traceback"]
    good.refresh()
    assert good.status == TaskResultStatus.SUCCESSFUL  # the worker carried on


def test_queues_and_delayed_jobs(start_worker):
    email = tasks.add.using(queue_name="emails").enqueue(1, 1)
    other = tasks.add.using(queue_name="reports").enqueue(1, 1)
    from datetime import timedelta

    later = tasks.add.using(run_after=timedelta(hours=1)).enqueue(1, 1)
    worker = start_worker("--burst", "--queue", "emails", "--queue", "default")
    assert worker.wait() == 0, worker.output
    states = dict(Job.objects.values_list("pk", "state"))
    assert states[int(email.id)] == "done"
    assert states[int(other.id)] == "ready"
    assert states[int(later.id)] == "ready"


def test_max_jobs(start_worker):
    for i in range(5):
        tasks.add.enqueue(i, i)
    worker = start_worker("--max-jobs", "2", "--concurrency", "1")
    assert worker.wait() == 0, worker.output
    assert Job.objects.filter(state="done").count() == 2


def test_no_processes_left_behind(start_worker):
    tasks.record_pid.enqueue("x")
    worker = start_worker("--burst")
    assert worker.wait() == 0, worker.output
    pid = Record.objects.get().pid
    assert not os.path.exists(f"/proc/{pid}")


def most_at_once(records) -> int:
    return peak((r.created_at, 1 if r.key.endswith(":start") else -1) for r in records)


def test_concurrency_bounds_the_jobs_running_at_once(start_worker):
    tasks.overlap.enqueue_many([((f"job{i}", 0.3), {}) for i in range(8)])
    worker = start_worker("--burst", "--concurrency", "2")
    assert worker.wait(timeout=60) == 0, worker.output
    assert Record.objects.count() == 16
    assert most_at_once(Record.objects.all()) == 2


def test_concurrency_with_batches(start_worker):
    tasks.overlap.enqueue_many([((f"job{i}", 0.001), {}) for i in range(40)])
    worker = start_worker("--burst", "--concurrency", "2", "--jobs-per-child", "20")
    assert worker.wait(timeout=60) == 0, worker.output
    assert Record.objects.count() == 80
    assert most_at_once(Record.objects.all()) <= 2


def test_jobs_waiting_in_a_batch_keep_their_reservation(start_worker):
    """Quick jobs queued in a child behind a slow one outlive their own ttr."""
    quick = tasks.noop.using(ttr=2)
    quick.enqueue_many([((), {}) for _ in range(30)])
    tasks.sleep.using(ttr=30).enqueue(4)
    quick.enqueue_many([((), {}) for _ in range(10)])
    worker = start_worker("--burst", "--concurrency", "1", "--jobs-per-child", "100")
    assert worker.wait(timeout=60) == 0, worker.output
    jobs = Job.objects.all()
    assert [j.state for j in jobs] == ["done"] * 41
    # Without renewals the rescuer would have taken back the jobs behind the
    # slow one (their reservations end 2 s after the claim): a second attempt.
    assert {j.attempts for j in jobs} == {1}


def test_large_arguments_and_return_values_cross_the_pipes(start_worker):
    big = "x" * 2_000_000
    results = [tasks.echo.enqueue(big, n=i) for i in range(3)]
    worker = start_worker("--burst", "--concurrency", "1", "--jobs-per-child", "3")
    assert worker.wait(timeout=60) == 0, worker.output
    for i, result in enumerate(results):
        result.refresh()
        assert result.return_value == {"args": [big], "kwargs": {"n": i}}
