"""django_jobs.testing decides on a return value that cannot be stored as a
worker does: the job is buried after its one attempt, never retried."""

import re

import pytest

from django_jobs.compat import TaskResultStatus, task_finished
from django_jobs.exceptions import ReturnValueNotStored
from django_jobs.models import Job
from django_jobs.testing import run_jobs, run_on_enqueue
from tests import returning_tasks as t
from tests.models import Record

pytestmark = pytest.mark.django_db

CASES = [
    (t.charge, "the return value is a Decimal", "Return str(value) instead"),
    (t.send_at, "the return value is a datetime", "Return value.isoformat()"),
    (t.new_id, "the return value is a UUID", "Return str(value) instead"),
    (t.saved, "the return value is a Record", "Return its pk instead"),
    (t.totals, "the return value['lines'][0]['amount'] is a Decimal", "str(value)"),
]


def buried_once(result_id: str) -> Job:
    job = Job.objects.get(pk=result_id)
    assert (job.state, job.attempts, len(job.errors)) == ("buried", 1, 1)
    assert job.errors[0]["exception_class_path"].endswith(".ReturnValueNotStored")
    return job


@pytest.mark.parametrize(("task", "what", "advice"), CASES)
def test_run_jobs_buries_it_and_raises(task, what, advice):
    result = task.using(max_attempts=3).enqueue("work")
    match = f"{re.escape(what)}.*{re.escape(advice)}"
    with pytest.raises(ReturnValueNotStored, match=match):
        run_jobs(delayed=True)
    job = buried_once(result.id)
    assert "buried, not retried" in job.errors[0]["traceback"]
    assert Record.objects.count() == 1  # the work, done once


def test_without_raising_it_is_a_failed_result_and_no_retry():
    result = t.charge.using(max_attempts=3).enqueue("work")
    finished = []

    def on_finished(sender, task_result, **kwargs):
        finished.append(task_result.status)

    task_finished.connect(on_finished, weak=False)
    try:
        (ran,) = run_jobs(delayed=True, raise_errors=False)
    finally:
        task_finished.disconnect(on_finished)
    assert ran.status == TaskResultStatus.FAILED
    assert ran.errors[0].exception_class is ReturnValueNotStored
    assert finished == [TaskResultStatus.FAILED]
    buried_once(result.id)
    assert run_jobs(delayed=True) == []  # nothing left to retry


def test_eager_mode_buries_it_as_it_is_enqueued():
    with run_on_enqueue(), pytest.raises(ReturnValueNotStored, match="a UUID"):
        t.new_id.using(max_attempts=5).enqueue("work")
    (job,) = Job.objects.all()
    buried_once(job.pk)
    with run_on_enqueue(raise_errors=False):
        result = t.new_id.using(max_attempts=5).enqueue("again")
    assert result.status == TaskResultStatus.FAILED
    buried_once(result.id)
