"""The django.tasks backend contract, against the database."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import async_to_sync
from django.test import override_settings
from django.utils import timezone

from django_jobs import queue
from django_jobs.backend import JobsBackend, jobs_backend
from django_jobs.compat import (
    TASKS_MODULE,
    InvalidTask,
    TaskResultDoesNotExist,
    TaskResultMismatch,
    TaskResultStatus,
    default_task_backend,
    task_backends,
    task_enqueued,
)
from django_jobs.exceptions import InvalidBackendAlias
from django_jobs.models import Job
from tests import tasks


def test_flags():
    backend = task_backends["default"]
    assert isinstance(backend, JobsBackend)
    assert backend.supports_defer
    assert backend.supports_priority
    assert backend.supports_get_result
    assert backend.supports_async_task


def test_enqueue_writes_a_ready_job(db):
    result = tasks.add.enqueue(1, b=2)
    assert result.status == TaskResultStatus.READY
    assert result.args == [1]
    assert result.kwargs == {"b": 2}
    assert result.attempts == 0
    assert result.task == tasks.add
    assert result.backend == "default"
    job = Job.objects.get(pk=int(result.id))
    assert job.task_path == "tests.tasks.add"
    assert (job.queue, job.priority, job.state) == ("default", 0, "ready")
    assert (job.ttr, job.max_attempts, job.on_failure) == (300, 3, "bury")
    assert job.enqueued_at == result.enqueued_at
    assert job.run_at == job.enqueued_at


def test_enqueue_uses_task_options(db):
    result = tasks.configured.enqueue(1)
    job = Job.objects.get(pk=result.id)
    assert (job.queue, job.priority) == ("emails", 5)
    assert (job.ttr, job.max_attempts, job.on_failure) == (60, 4, "delete")


def test_defaults_come_from_options(db):
    job = Job.objects.get(pk=tasks.strict_task.enqueue(1).id)
    assert job.ttr == 30
    assert job.backend == "strict"


def test_using_overrides_per_call(db):
    result = tasks.configured.using(ttr=7, max_attempts=1, priority=-3).enqueue(1)
    job = Job.objects.get(pk=result.id)
    assert (job.ttr, job.max_attempts, job.priority) == (7, 1, -3)


def test_run_after_datetime(db):
    when = timezone.now() + timedelta(hours=2)
    job = Job.objects.get(pk=tasks.add.using(run_after=when).enqueue(1, 2).id)
    assert job.run_at == when
    assert job.display_state == "delayed"


def test_run_after_timedelta_means_from_now(db):
    before = timezone.now()
    result = tasks.add.using(run_after=timedelta(minutes=5)).enqueue(1, 2)
    job = Job.objects.get(pk=result.id)
    assert before + timedelta(minutes=5) <= job.run_at
    assert job.run_at <= timezone.now() + timedelta(minutes=5)


def test_task_enqueued_signal(db):
    received = []

    def receiver(sender, task_result, **kwargs):
        received.append((sender, task_result))

    task_enqueued.connect(receiver)
    try:
        result = tasks.add.enqueue(1, 2)
    finally:
        task_enqueued.disconnect(receiver)
    assert received == [(JobsBackend, result)]


def test_enqueue_many(db):
    results = tasks.add.enqueue_many([((i,), {"b": i}) for i in range(5)])
    assert [r.args for r in results] == [[i] for i in range(5)]
    jobs = Job.objects.filter(pk__in=[r.id for r in results]).order_by("pk")
    assert [j.kwargs for j in jobs] == [{"b": i} for i in range(5)]
    assert len({r.id for r in results}) == 5


def test_enqueue_many_checks_every_call_before_writing(db):
    with pytest.raises(TypeError, match="missing a required argument: 'b'"):
        tasks.add.enqueue_many([((1, 2), {}), ((1,), {})])
    with pytest.raises(TypeError, match=r"takes \(args, kwargs\) pairs"):
        tasks.add.enqueue_many([(1, 2, 3)])
    assert Job.objects.count() == 0


def test_async_enqueue_and_get_result(db):
    result = async_to_sync(tasks.add.aenqueue)(1, 2)
    fetched = async_to_sync(tasks.add.aget_result)(result.id)
    assert fetched.id == result.id


# get_result


def test_get_result_round_trip(db):
    result = tasks.add.enqueue(1, 2)
    fetched = tasks.add.get_result(result.id)
    assert fetched == result
    assert fetched.task == tasks.add


def test_get_result_tells_the_whole_story(db):
    result = tasks.fail.using(max_attempts=2).enqueue("x")
    for worker in ("w1", "w2"):
        (job,) = queue.claim(worker_id=worker)
        queue.fail(
            job, queue.error_entry(job, ValueError(f"from {worker}")), backoff=(0, 0)
        )
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 2
    assert result.worker_ids == ["w1", "w2"]
    assert [e.exception_class for e in result.errors] == [ValueError, ValueError]
    assert result.errors[1].traceback.endswith("ValueError: from w2\n")
    assert result.is_finished
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value


def test_get_result_statuses_and_return_value(db):
    result = tasks.add.enqueue(20, 22)
    (job,) = queue.claim(worker_id="w1")
    result.refresh()
    assert result.status == TaskResultStatus.RUNNING
    assert result.started_at == job.started_at
    assert result.last_attempted_at == job.last_attempted_at
    queue.complete(job.pk, token=job.claim_token, return_value=42)
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 42
    assert result.attempts == 1
    assert result.finished_at >= result.started_at >= result.enqueued_at


def test_get_result_of_a_retried_job_is_ready_again(db):
    result = tasks.add.enqueue(1, 2)
    (job,) = queue.claim(worker_id="w1")
    queue.fail(job, queue.error_entry(job, ValueError("x")), backoff=(0, 0))
    result.refresh()
    assert result.status == TaskResultStatus.READY
    assert result.attempts == 1
    assert len(result.errors) == 1


def test_get_result_rebuilds_per_call_options(db):
    result = tasks.add.using(priority=7, ttr=9).enqueue(1, 2)
    fetched = default_task_backend.get_result(result.id)
    assert fetched.task.priority == 7
    assert fetched.task.ttr == 9


@pytest.mark.parametrize("result_id", ["999999", "abc", "", "1.5"])
def test_get_result_unknown_ids(db, result_id):
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(result_id)


def test_get_result_of_another_backend_does_not_exist(db):
    result = tasks.strict_task.enqueue(1)
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(result.id)
    assert task_backends["strict"].get_result(result.id).id == result.id


def test_get_result_mismatch(db):
    result = tasks.add.enqueue(1, 2)
    with pytest.raises(TaskResultMismatch):
        tasks.noop.get_result(result.id)


def test_get_result_of_a_row_that_names_no_task(make_job):
    job = make_job(task_path="os.system", args=["echo owned"])
    with pytest.raises(InvalidTask, match=r"names 'os\.system', which is not a Task"):
        default_task_backend.get_result(str(job.pk))


# Bad input writes nothing


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (
            (object(),),
            {},
            r"args\[0\] cannot be stored as JSON \(Unsupported type: object\)",
        ),
        ((), {"a": datetime.now(UTC)}, r"kwargs\['a'\].*Unsupported type: datetime"),
        (({1: "x"},), {}, r"key 1 is not a string"),
        ((float("nan"),), {}, "is not a finite number"),
        (({"deep": [1, {2}]},), {}, r"args\[0\]\['deep'\]\[1\].*Unsupported type: set"),
    ],
)
def test_arguments_that_are_not_json(db, args, kwargs, message):
    with pytest.raises(TypeError, match=message):
        tasks.echo.enqueue(*args, **kwargs)
    assert Job.objects.count() == 0


def test_tuples_and_bytes_become_json(db):
    result = tasks.echo.enqueue((1, 2), b"text")
    assert Job.objects.get(pk=result.id).args == [[1, 2], "text"]


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((1,), {}, "missing a required argument: 'b'"),
        ((1, 2, 3), {}, "too many positional arguments"),
        ((1, 2), {"c": 3}, "got an unexpected keyword argument 'c'"),
        ((1,), {"a": 2}, "multiple values for argument 'a'"),
    ],
)
def test_arguments_that_do_not_fit_the_signature(db, args, kwargs, message):
    with pytest.raises(TypeError, match=rf"Task 'tests\.tasks\.add' .*{message}"):
        tasks.add.enqueue(*args, **kwargs)
    assert Job.objects.count() == 0


def test_context_argument_is_not_counted(db):
    tasks.with_context.enqueue(5)
    with pytest.raises(TypeError, match="too many positional arguments"):
        tasks.with_context.enqueue(5, 6)


def test_settings_are_checked_again_on_enqueue(db):
    task = tasks.add.using(queue_name="emails")
    with (
        override_settings(
            TASKS={
                "default": {
                    "BACKEND": "django_jobs.backend.JobsBackend",
                    "QUEUES": ["x"],
                }
            }
        ),
        pytest.raises(InvalidTask, match="queue 'emails' is not one of"),
    ):
        task.enqueue(1, 2)
    assert Job.objects.count() == 0


def test_priority_constraint_in_the_database(db):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        queue.enqueue(task_path="tests.tasks.noop", priority=101)


def test_error_payload_is_json(db):
    result = tasks.fail.enqueue()
    (job,) = queue.claim(worker_id="w1")
    queue.fail(job, queue.error_entry(job, ValueError("x")), backoff=(0, 0))
    job = Job.objects.get(pk=result.id)
    json.dumps(job.errors)


#: TASKS with an alias of another kind of backend and one with bad OPTIONS.
WRONG_ALIASES = {
    "default": {"BACKEND": "django_jobs.backend.JobsBackend"},
    "other": {"BACKEND": f"{TASKS_MODULE}.backends.dummy.DummyBackend"},
    "broken": {
        "BACKEND": "django_jobs.backend.JobsBackend",
        "OPTIONS": {"DEFAULT_TTR": -1},
    },
}


def test_jobs_backend_refuses_wrong_aliases_with_one_sentence():
    """Commands and the console resolve a person's alias through jobs_backend."""
    assert jobs_backend("default") is task_backends["default"]
    with pytest.raises(ValueError, match="'nope' is not a key of the TASKS setting"):
        jobs_backend("nope")
    with override_settings(TASKS=WRONG_ALIASES):
        with pytest.raises(ValueError, match=r"not django_jobs\.backend\.JobsBackend"):
            jobs_backend("other")
        with pytest.raises(
            ValueError, match=r"TASKS\['broken'\]\['OPTIONS'\] is invalid"
        ):
            jobs_backend("broken")


def test_a_wrong_alias_is_an_invalid_backend_alias_naming_it():
    """A class of its own, and still a ValueError for callers that catch one."""
    with override_settings(TASKS=WRONG_ALIASES):
        for alias in ("nope", "other", "broken"):
            with pytest.raises(InvalidBackendAlias) as refused:
                jobs_backend(alias)
            assert isinstance(refused.value, ValueError)
            assert refused.value.alias == alias
            assert repr(alias) in str(refused.value)


def test_enqueue_is_one_statement(db, django_assert_num_queries):
    """One INSERT for one job or many; looking up unique jobs costs only when needed."""
    with django_assert_num_queries(1):
        tasks.add.enqueue(1, 2)
    with django_assert_num_queries(1):
        tasks.add.enqueue_many([((i, i), {}) for i in range(50)])
    assert Job.objects.count() == 51
