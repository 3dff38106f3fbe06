"""A job that returns what cannot be stored is buried at once, by a real worker.

Its work is done (an email sent, a charge made): another attempt would do it
again. So whatever its max_attempts, one attempt, and an error that says
which type it returned and what to return instead.
"""

from django_jobs.exceptions import ReturnValueNotStored
from django_jobs.models import Job
from tests import returning_tasks as t
from tests.models import Record

CASES = {
    "decimal": (t.charge, "is a Decimal", "Return str(value) instead"),
    "datetime": (t.send_at, "is a datetime", "Return value.isoformat() instead"),
    "uuid": (t.new_id, "is a UUID", "Return str(value) instead"),
}


def test_a_value_that_cannot_be_stored_buries_the_job_after_one_attempt(
    start_worker,
):
    results = {
        key: task.using(max_attempts=3).enqueue(key)
        for key, (task, _, _) in CASES.items()
    }
    worker = start_worker("--burst")
    assert worker.wait() == 0, worker.output

    for key, (task, what, advice) in CASES.items():
        job = Job.objects.get(pk=results[key].id)
        assert (job.state, job.attempts, len(job.errors)) == ("buried", 1, 1)
        (error,) = job.errors
        assert error["exception_class_path"] == (
            "django_jobs.exceptions.ReturnValueNotStored"
        )
        assert (
            f"Task {task.module_path!r}: the return value {what}"
            in (error["traceback"])
        )
        assert advice in error["traceback"]
        assert "buried, not retried" in error["traceback"]
        results[key].refresh()
        assert results[key].errors[0].exception_class is ReturnValueNotStored
        assert f"{task.module_path} (attempt 1/3): returned what cannot be " in (
            worker.output
        )
    # The work of each job was done once.
    assert sorted(Record.objects.values_list("key", flat=True)) == sorted(CASES)
    assert ".;" not in worker.output
    assert worker.output.count("; buried") == len(CASES)
