"""Every queue operation: what it does, and how it refuses."""

from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs import queue
from django_jobs.exceptions import (
    ClaimLost,
    InvalidTransition,
    JobDoesNotExist,
    ReservationExpired,
    WorkerLost,
)
from django_jobs.models import Job, Worker


def stored(job):
    return Job.objects.get(pk=job.pk)


def an_error(job, message="boom"):
    return queue.error_entry(job, ValueError(message))


# touch


def test_touch_extends_the_reservation(claimed):
    job = claimed(ttr=10)
    deadline = queue.touch(job.pk, token=job.claim_token, seconds=100)
    assert deadline > timezone.now() + timedelta(seconds=99)
    assert stored(job).reserved_until == deadline


def test_touch_with_a_lost_claim(claimed):
    job = claimed()
    with pytest.raises(ClaimLost, match=f"Cannot touch job {job.pk}"):
        queue.touch(job.pk, token="0" * 32, seconds=10)


def test_touch_a_missing_job(db):
    with pytest.raises(JobDoesNotExist, match="Job 12345 does not exist"):
        queue.touch(12345, token="x", seconds=10)


# complete


def test_complete(claimed):
    job = claimed()
    queue.complete(job.pk, token=job.claim_token, return_value={"answer": 42})
    job = stored(job)
    assert job.state == "done"
    assert job.return_value == {"answer": 42}
    assert job.finished_at is not None
    assert (job.reserved_until, job.reserved_by, job.claim_token) == (None, "", "")


def test_complete_twice_fails_loudly(claimed):
    job = claimed()
    queue.complete(job.pk, token=job.claim_token, return_value=1)
    with pytest.raises(ClaimLost):
        queue.complete(job.pk, token=job.claim_token, return_value=2)
    assert stored(job).return_value == 1


def test_complete_after_a_rescue_and_a_new_claim_is_refused(claimed):
    job = claimed(max_attempts=5)
    Job.objects.filter(pk=job.pk).update(reserved_until=timezone.now() - timedelta(1))
    queue.rescue(backoff=(0, 0))
    (again,) = queue.claim(worker_id="w2")
    with pytest.raises(ClaimLost):
        queue.complete(job.pk, token=job.claim_token, return_value="late")
    queue.complete(again.pk, token=again.claim_token, return_value="current")
    assert stored(job).return_value == "current"


def test_complete_returning_leaves_out_lost_claims(claimed):
    first, second = claimed(), claimed()
    written = queue.complete_returning(
        [(first.pk, first.claim_token, 1), (second.pk, "stale", 2), (999999, "x", 3)]
    )
    assert list(written) == [first.pk]
    assert written[first.pk]["state"] == "done"
    assert written[first.pk]["claim_token"] == ""
    assert stored(first).state == "done"
    assert stored(first).return_value == 1
    assert stored(second).state == "reserved"


def test_complete_stores_none_and_nested_values(claimed):
    job = claimed()
    queue.complete(job.pk, token=job.claim_token, return_value=None)
    assert stored(job).return_value is None
    job = claimed()
    value = {"a": [1, 2.5, "x", None, True], "b": {"c": []}}
    queue.complete(job.pk, token=job.claim_token, return_value=value)
    assert stored(job).return_value == value


# retry, release, fail


def test_retry_puts_the_job_back_later_with_the_error(claimed):
    job = claimed()
    queue.retry(job.pk, token=job.claim_token, error=an_error(job), delay=60)
    job_after = stored(job)
    assert job_after.state == "ready"
    assert job_after.run_at > timezone.now() + timedelta(seconds=59)
    assert job_after.attempts == 1
    assert job_after.errors[0]["exception_class_path"] == "builtins.ValueError"
    assert job_after.errors[0]["attempt"] == 1
    assert job_after.errors[0]["worker_id"] == "w1"
    assert job_after.display_state == "delayed"
    assert job_after.claim_token == ""


def test_retry_refused_for_a_ready_job(make_job):
    job = make_job()
    with pytest.raises(ClaimLost):
        queue.retry(job.pk, token="t", error={})


def test_release_does_not_count_the_attempt(claimed):
    job = claimed()
    queue.release(job.pk, token=job.claim_token)
    job = stored(job)
    assert (job.state, job.attempts, job.worker_ids, job.errors) == ("ready", 0, [], [])
    assert job.run_at <= timezone.now()


def test_fail_retries_then_buries(claimed):
    job = claimed(max_attempts=2)
    assert (
        queue.fail(job, an_error(job, "first"), backoff=(0, 0)).then
        is queue.Then.RETRIED
    )
    (job,) = queue.claim(worker_id="w2")
    assert job.attempts == 2
    assert (
        queue.fail(job, an_error(job, "second"), backoff=(0, 0)).then
        is queue.Then.BURIED
    )
    job = stored(job)
    assert job.state == "buried"
    assert [e["traceback"].splitlines()[-1] for e in job.errors] == [
        "ValueError: first",
        "ValueError: second",
    ]
    assert job.worker_ids == ["w1", "w2"]
    assert job.finished_at is not None


def test_fail_deletes_when_the_task_says_so(claimed):
    job = claimed(max_attempts=1, on_failure="delete")
    assert queue.fail(job, an_error(job)).then is queue.Then.DELETED
    assert not Job.objects.filter(pk=job.pk).exists()


def test_fail_uses_exponential_backoff(claimed):
    job = claimed(max_attempts=5)
    queue.fail(job, an_error(job), backoff=(100, 1000))
    delay = (stored(job).run_at - timezone.now()).total_seconds()
    assert 70 < delay <= 125


def test_backoff_delay_doubles_and_is_capped():
    for attempt, expected in [(1, 10), (2, 20), (3, 40), (10, 300)]:
        delay = queue.backoff_delay(attempt, 10, 300)
        assert expected * 0.75 <= delay <= expected * 1.25


# bury, kick, delete


def test_bury_a_ready_job(make_job):
    job = make_job()
    assert queue.bury(job.pk) == 1
    assert stored(job).state == "buried"


def test_bury_a_reserved_job_needs_its_token(claimed):
    job = claimed()
    with pytest.raises(InvalidTransition, match="it is reserved"):
        queue.bury(job.pk)
    queue.bury(job.pk, token=job.claim_token, error=an_error(job))
    assert stored(job).state == "buried"
    assert len(stored(job).errors) == 1


def test_bury_a_done_job_is_refused(claimed):
    job = claimed()
    queue.complete(job.pk, token=job.claim_token)
    with pytest.raises(
        InvalidTransition, match=f"Cannot bury job {job.pk}: it is done"
    ):
        queue.bury(job.pk)


def test_bury_many_skips_those_it_cannot(make_job, claimed):
    ready, reserved = make_job(), claimed()
    assert queue.bury([ready.pk, reserved.pk, 424242]) == 1
    assert stored(reserved).state == "reserved"


def test_kick_a_buried_job_gives_it_another_attempt(claimed):
    job = claimed(max_attempts=1)
    queue.fail(job, an_error(job))
    assert queue.kick(job.pk) == 1
    job = stored(job)
    assert (job.state, job.max_attempts, job.finished_at) == ("ready", 2, None)
    (again,) = queue.claim(worker_id="w2")
    assert again.attempts == 2


def test_kick_a_delayed_job_makes_it_due(make_job):
    job = make_job(run_at=timezone.now() + timedelta(hours=1))
    assert queue.claim(worker_id="w1") == []
    queue.kick(job.pk)
    assert [j.pk for j in queue.claim(worker_id="w1")] == [job.pk]


def test_kick_refused_for_done_and_reserved(claimed):
    job = claimed()
    with pytest.raises(InvalidTransition, match="Cannot kick"):
        queue.kick(job.pk)
    queue.complete(job.pk, token=job.claim_token)
    with pytest.raises(InvalidTransition, match="it is done"):
        queue.kick(job.pk)


def test_delete(make_job, claimed):
    ready, reserved = make_job(), claimed()
    assert queue.delete([ready.pk, reserved.pk]) == 1
    with pytest.raises(InvalidTransition, match="Cannot delete"):
        queue.delete(reserved.pk)
    assert queue.delete(reserved.pk, token=reserved.claim_token) == 1
    with pytest.raises(JobDoesNotExist):
        queue.delete(reserved.pk)


# rescue


def test_rescue_expired_reservations(claimed):
    job = claimed(max_attempts=3)
    fresh = claimed()
    Job.objects.filter(pk=job.pk).update(reserved_until=timezone.now() - timedelta(1))
    assert queue.rescue(backoff=(0, 0)) == {"retried": 1, "buried": 0, "deleted": 0}
    job_after = stored(job)
    assert job_after.state == "ready"
    assert job_after.attempts == 1
    error = job_after.errors[0]
    assert error["exception_class_path"] == "django_jobs.exceptions.ReservationExpired"
    assert "expired" in error["traceback"]
    assert stored(fresh).state == "reserved"


def test_rescue_buries_jobs_out_of_attempts(claimed):
    job = claimed(max_attempts=1)
    Job.objects.filter(pk=job.pk).update(reserved_until=timezone.now() - timedelta(1))
    assert queue.rescue()["buried"] == 1
    assert stored(job).state == "buried"


def test_rescue_jobs_of_silent_workers(claimed):
    job = claimed()
    silent_since = timezone.now() + timedelta(seconds=1)
    Worker.objects.create(id="w1", hostname="h", pid=1, concurrency=1)
    Worker.objects.filter(pk="w1").update(last_heartbeat=silent_since)
    assert queue.rescue(silent_before=silent_since)["retried"] == 0  # not silent
    later = silent_since + timedelta(seconds=1)
    assert queue.rescue(silent_before=later, backoff=(0, 0))["retried"] == 1
    error = stored(job).errors[0]
    assert error["exception_class_path"] == "django_jobs.exceptions.WorkerLost"
    assert stored(job).state == "ready"


def test_error_classes_resolve():
    assert issubclass(ReservationExpired, TimeoutError)
    assert issubclass(WorkerLost, RuntimeError)
