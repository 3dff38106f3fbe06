"""Bad task declarations fail where they are written, with the task's name."""

from datetime import datetime, timedelta

import pytest
from django.test import override_settings

from django_jobs.compat import InvalidTask, task
from django_jobs.task import JobTask
from tests import tasks


def module_level(value: int) -> int:
    return value


def test_decorator_makes_a_job_task_with_options():
    assert isinstance(tasks.configured, JobTask)
    assert tasks.configured.ttr == 60
    assert tasks.configured.max_attempts == 4
    assert tasks.configured.on_failure == "delete"
    assert tasks.noop.ttr is None  # the backend's default applies


def test_using_accepts_the_job_options():
    changed = tasks.add.using(ttr=5, max_attempts=2, on_failure="delete", priority=3)
    assert (
        changed.ttr,
        changed.max_attempts,
        changed.on_failure,
        changed.priority,
    ) == (
        5,
        2,
        "delete",
        3,
    )
    assert tasks.add.ttr is None  # the original is untouched


def test_not_module_level():
    def local(value):
        return value

    with pytest.raises(InvalidTask, match="must be defined at module level"):
        task(local)


@pytest.mark.parametrize("priority", [101, -101, 1.5, "high", True])
def test_priority_out_of_range(priority):
    with pytest.raises(
        InvalidTask, match=r"module_level'.*priority must be a whole number"
    ):
        task(priority=priority)(module_level)


@pytest.mark.parametrize("priority", [100, -100, 0])
def test_priority_bounds_are_accepted(priority):
    assert task(priority=priority)(module_level).priority == priority


@pytest.mark.parametrize("name", ["ttr", "max_attempts"])
@pytest.mark.parametrize("value", [0, -1, 1.5, "10", True])
def test_ttr_and_max_attempts_must_be_positive_integers(name, value):
    with pytest.raises(InvalidTask, match=f"{name} must be a positive whole number"):
        task(**{name: value})(module_level)
    with pytest.raises(InvalidTask, match=f"{name} must be a positive whole number"):
        tasks.add.using(**{name: value})


def test_on_failure_choices():
    with pytest.raises(InvalidTask, match="on_failure must be one of bury, delete"):
        task(on_failure="ignore")(module_level)


def test_unknown_task_option_is_a_type_error():
    with pytest.raises(TypeError):
        task(time_limit=5)(module_level)


def test_queue_not_in_queues():
    with pytest.raises(
        InvalidTask, match="queue 'reports' is not one of this backend's QUEUES"
    ):
        task(backend="strict", queue_name="reports")(module_level)
    assert (
        task(backend="strict", queue_name="emails")(module_level).queue_name == "emails"
    )


def test_any_queue_when_queues_is_empty():
    assert task(queue_name="anything")(module_level).queue_name == "anything"


def test_naive_run_after_with_use_tz():
    with pytest.raises(InvalidTask, match="run_after must be an aware datetime"):
        tasks.add.using(run_after=datetime(2030, 1, 1))


@override_settings(USE_TZ=False)
def test_naive_run_after_without_use_tz():
    assert tasks.add.using(run_after=datetime(2030, 1, 1)).run_after.year == 2030


def test_run_after_timedelta_is_accepted():
    delayed = tasks.add.using(run_after=timedelta(minutes=5))
    assert delayed.run_after == timedelta(minutes=5)


def test_run_after_negative_timedelta():
    with pytest.raises(InvalidTask, match="must not be a negative delay"):
        tasks.add.using(run_after=timedelta(seconds=-1))


def test_run_after_of_another_type():
    with pytest.raises(
        InvalidTask, match="run_after must be a datetime or a timedelta"
    ):
        tasks.add.using(run_after="tomorrow")


def test_run_after_cannot_be_static():
    # Django 6.1: "run_after cannot be defined statically..."; the backport:
    # "got multiple values for keyword argument 'run_after'".
    with pytest.raises(TypeError, match="run_after"):
        task(run_after=timedelta(1))(module_level)


def test_takes_context_needs_context_argument():
    with pytest.raises(InvalidTask, match="needs 'context' as the first argument"):
        task(takes_context=True)(module_level)


def test_async_tasks_are_supported():
    assert tasks.async_add.func.__name__ == "async_add"
