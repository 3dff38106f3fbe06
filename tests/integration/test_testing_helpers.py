"""django_jobs.testing in pytest: run_jobs, run_on_enqueue and the fixtures.

The helpers must leave the rows a worker would (claimed by the test worker,
finished through django_jobs.queue), for every option @task accepts.
"""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from django_jobs import queue
from django_jobs.batches import batch
from django_jobs.compat import (
    TASKS_MODULE,
    TaskResultStatus,
    task_finished,
    task_started,
)
from django_jobs.exceptions import TaskNotFound, TaskNotImportable
from django_jobs.models import Job
from django_jobs.testing import TEST_WORKER_ID, run_jobs, run_on_enqueue
from tests import helper_tasks as t
from tests import tasks
from tests.models import Record

pytestmark = pytest.mark.django_db

SUCCESSFUL, FAILED, READY = (
    TaskResultStatus.SUCCESSFUL,
    TaskResultStatus.FAILED,
    TaskResultStatus.READY,
)


def keys() -> list[str]:
    return list(Record.objects.order_by("pk").values_list("key", flat=True))


def test_runs_what_was_enqueued_and_what_those_jobs_enqueue():
    enqueued = t.fan_out.enqueue(2)
    results = run_jobs()
    assert [r.status for r in results] == [SUCCESSFUL] * 3
    assert keys() == ["fan_out:done", "urgent:child-0", "urgent:child-1"]
    result = t.fan_out.get_result(enqueued.id)
    assert (result.status, result.return_value) == (SUCCESSFUL, 2)
    assert result.worker_ids == [TEST_WORKER_ID]
    assert result.attempts == 1
    children = Job.objects.exclude(pk=int(enqueued.id))
    assert {job.parent_id for job in children} == {int(enqueued.id)}
    assert run_jobs() == []


def test_jobs_run_in_claim_order():
    tasks.add.enqueue(1, 1)
    t.urgent.enqueue("first")
    results = run_jobs()
    assert [r.task.name for r in results] == ["urgent", "add"]


def test_only_some_tasks_run_and_the_others_stay_as_they_were():
    waiting = t.urgent.enqueue("not now")  # ahead of add in the same queue
    added = tasks.add.enqueue(2, 3)
    (result,) = run_jobs(tasks=[tasks.add])
    assert (result.id, result.return_value) == (added.id, 5)
    left = t.urgent.get_result(waiting.id)
    assert (left.status, left.attempts, left.errors) == (READY, 0, [])
    assert Job.objects.get(pk=int(waiting.id)).state == "ready"
    (other,) = run_jobs(tasks=["tests.helper_tasks.urgent"])
    assert other.id == waiting.id


def test_only_some_queues_run():
    t.send_email.enqueue("a@example.com")
    tasks.add.enqueue(1, 2)
    (result,) = run_jobs(queues=["emails"])
    assert result.task.queue_name == "emails"
    assert Job.objects.get(queue="default").state == "ready"


def test_a_failure_is_recorded_then_raised():
    enqueued = tasks.fail.enqueue("broken")
    with pytest.raises(ValueError, match="broken"):
        run_jobs()
    result = tasks.fail.get_result(enqueued.id)
    assert result.status == READY  # retried, as a worker would
    assert result.attempts == 1
    assert result.errors[0].exception_class is ValueError
    assert "ValueError: broken" in result.errors[0].traceback


def test_failures_recorded_and_retried_until_buried_or_deleted():
    buried = tasks.fail.enqueue("again")
    deleted = t.send_email.enqueue("nobody")
    results = run_jobs(raise_errors=False, delayed=True)
    by_id = {r.id: r for r in results}
    assert by_id[buried.id].status == FAILED
    assert len(by_id[buried.id].errors) == 3  # DEFAULT_MAX_ATTEMPTS
    assert tasks.fail.get_result(buried.id).status == FAILED
    assert by_id[deleted.id].status == FAILED  # on_failure="delete"
    assert not Job.objects.filter(pk=int(deleted.id)).exists()


def test_retries_wait_for_their_backoff_unless_delayed(settings):
    settings.TASKS = {
        "default": {
            "BACKEND": "django_jobs.backend.JobsBackend",
            "OPTIONS": {"RETRY_BACKOFF": 60, "RETRY_BACKOFF_MAX": 60},
        }
    }
    enqueued = t.flaky.enqueue(2)
    run_jobs(raise_errors=False)
    assert t.flaky.get_result(enqueued.id).status == READY  # waiting a minute
    (result,) = run_jobs(raise_errors=False, delayed=True)
    assert (result.status, result.return_value, result.attempts) == (
        SUCCESSFUL,
        3,
        3,
    )


def test_delayed_jobs_wait_unless_asked():
    later = tasks.add.using(run_after=timedelta(hours=1)).enqueue(1, 1)
    assert run_jobs() == []
    (result,) = run_jobs(delayed=True)
    assert (result.id, result.status) == (later.id, SUCCESSFUL)


def test_the_context_touches_checkpoints_and_reports_progress():
    enqueued = t.step_through.enqueue(3, fail_at=2)
    with pytest.raises(RuntimeError, match="failed at step 2"):
        run_jobs()
    job = Job.objects.get()
    assert job.checkpoint == {"next": 2}
    assert job.progress["done"] == 1
    (result,) = run_jobs()
    value = result.return_value
    assert (value["start"], value["attempt"]) == (2, 2)  # resumed
    first, second = map(timezone.datetime.fromisoformat, value["deadlines"])
    assert second - first > timedelta(seconds=500)  # touch(600) after touch()
    assert keys() == ["step:1:1", "step:2:2", "step:2:3"]  # kept, as in a worker
    assert t.step_through.get_result(enqueued.id).status == SUCCESSFUL


def test_unique_jobs_are_one_until_they_ran():
    first = t.rebuild_index.enqueue("products")
    assert t.rebuild_index.enqueue("products").id == first.id
    run_jobs()
    assert t.rebuild_index.enqueue("products").id != first.id


def test_expired_jobs_are_buried_unrun():
    past = timezone.now() - timedelta(seconds=1)
    enqueued = tasks.record.using(expires=past).enqueue("late")
    assert run_jobs() == []
    assert keys() == []
    result = tasks.record.get_result(enqueued.id)
    assert result.status == FAILED
    assert result.errors[0].exception_class_path.endswith("JobExpired")


def test_options_of_the_task_are_on_the_row():
    t.send_email.using(priority=7).enqueue("x@example.com")
    run_jobs()
    job = Job.objects.get()
    assert (job.queue, job.priority, job.ttr, job.max_attempts, job.on_failure) == (
        "emails",
        7,
        30,
        2,
        "delete",
    )
    assert (job.state, job.return_value, job.reserved_by) == (
        "done",
        "x@example.com",
        "",
    )


def test_a_path_that_is_no_task_is_buried_and_never_called():
    job = queue.enqueue(task_path="os.system", args=["touch /tmp/owned"])
    with pytest.raises(TaskNotFound, match=rf"not a {re.escape(TASKS_MODULE)}\.Task"):
        run_jobs()
    job.refresh_from_db()
    assert job.state == "buried"
    assert "it was not called" in job.errors[0]["traceback"]


def test_a_path_that_does_not_import_is_buried_at_once():
    job = queue.enqueue(task_path="tests.helper_tasks.not_written_yet")
    with pytest.raises(TaskNotImportable, match="cannot be imported"):
        run_jobs()
    job.refresh_from_db()
    assert job.state == "buried"
    assert job.errors[0]["exception_class_path"].endswith("TaskNotImportable")


def test_an_unserialisable_return_value_is_a_failure():
    with pytest.raises(TypeError, match="cannot be stored as JSON"):
        t.returns_a_set.enqueue()
        run_jobs()


def test_text_the_database_cannot_store_is_escaped_as_by_a_worker():
    t.returns_a_nul.enqueue()
    (result,) = run_jobs()
    assert result.status == SUCCESSFUL
    assert result.return_value.startswith("before")
    assert "\x00" not in result.return_value


def test_signals_are_sent_as_by_a_worker():
    seen = []

    def started(sender, task_result, **kwargs):
        seen.append(("started", task_result.status))

    def finished(sender, task_result, **kwargs):
        seen.append(("finished", task_result.status))

    task_started.connect(started)
    task_finished.connect(finished)
    try:
        tasks.add.enqueue(1, 2)
        run_jobs()
    finally:
        task_started.disconnect(started)
        task_finished.disconnect(finished)
    assert seen == [("started", "RUNNING"), ("finished", "SUCCESSFUL")]


def test_a_batch_callback_runs_once_its_jobs_have():
    with batch(tasks.batch_done, kwargs={"label": "b"}):
        tasks.add.enqueue(1, 1)
        tasks.add.enqueue(2, 2)
    results = run_jobs()
    assert [r.task.name for r in results] == ["add", "add", "batch_done"]
    assert results[-1].return_value["done"] == 2


def test_another_backend_and_limit():
    tasks.strict_task.enqueue(1)
    tasks.add.enqueue(1, 1)
    tasks.add.enqueue(2, 2)
    assert [r.task.name for r in run_jobs(backend="strict")] == ["strict_task"]
    assert len(run_jobs(limit=1)) == 1
    assert len(run_jobs()) == 1


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_too():
    t.fan_out.enqueue(1)
    assert [r.status for r in run_jobs()] == [SUCCESSFUL] * 2


def test_a_database_error_in_a_job_leaves_the_test_usable():
    enqueued = t.broken_sql.enqueue()
    (result,) = run_jobs(raise_errors=False)  # no backoff in the tests: 3 attempts
    assert result.status == FAILED
    assert len(result.errors) == 3
    assert "no_such_table" in result.errors[0].traceback
    assert t.broken_sql.get_result(enqueued.id).attempts == 3
    if connection.vendor == "postgresql":  # the error aborted the transaction
        assert keys() == []  # so the job's writes were rolled back
    else:
        assert keys() == ["before the error"] * 3  # kept, as in a worker


# Eager


def test_eager_runs_each_job_as_it_is_enqueued():
    with run_on_enqueue():
        result = tasks.add.enqueue(20, 22)
        assert keys() == []
        t.urgent.enqueue("now")
        assert keys() == ["urgent:now"]
    assert (result.status, result.return_value) == (SUCCESSFUL, 42)
    assert result.worker_ids == [TEST_WORKER_ID]
    tasks.add.enqueue(1, 1)  # after the block: waits for a worker
    assert Job.objects.filter(state="ready").count() == 1


def test_eager_runs_jobs_enqueued_by_a_job_after_it():
    with run_on_enqueue():
        parent = t.fan_out.enqueue(2)
    assert parent.status == SUCCESSFUL
    assert keys() == ["fan_out:done", "urgent:child-0", "urgent:child-1"]


def test_eager_only_some_tasks_and_raising():
    with run_on_enqueue(tasks=[tasks.fail]):
        waiting = tasks.add.enqueue(1, 1)
        with pytest.raises(ValueError, match="eager"):
            tasks.fail.enqueue("eager")
    assert waiting.status == READY
    assert Job.objects.get(task_path="tests.tasks.fail").errors


def test_eager_leaves_the_other_queues_alone():
    waiting = t.send_email.using(priority=90).enqueue("x@example.com")  # "emails"
    with run_on_enqueue():
        assert tasks.add.enqueue(1, 1).return_value == 2
    left = t.send_email.get_result(waiting.id)
    assert (left.status, left.started_at, left.attempts) == (READY, None, 0)


def test_eager_delayed_jobs_wait_unless_asked():
    with run_on_enqueue():
        later = tasks.add.using(run_after=timedelta(minutes=5)).enqueue(1, 1)
    assert later.status == READY
    with run_on_enqueue(delayed=True):
        now = tasks.add.using(run_after=timedelta(minutes=5)).enqueue(2, 2)
    assert now.return_value == 4


def test_eager_with_a_context_task():
    with run_on_enqueue():
        result = t.step_through.enqueue(2)
    assert result.return_value["attempt"] == 1
    assert keys() == ["step:1:1", "step:1:2"]


# Fixtures (tests/conftest.py opts in, as the docs tell users to)


def test_the_run_jobs_fixture(request):
    run = request.getfixturevalue("run_jobs")
    tasks.add.enqueue(2, 2)
    assert run()[0].return_value == 4


def test_the_eager_jobs_fixture(eager_jobs):
    assert tasks.add.enqueue(3, 3).return_value == 6
