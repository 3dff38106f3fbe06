"""A cancelled job that is retried runs again instead of being cancelled again.

Cancelling a running job marks it (``cancel_requested_at``); its worker
stops it and buries it. A retry (``queue.kick``) must clear the mark, or the
next worker to claim the job stops it at once and buries it again, burning
an attempt each time.
"""

from django_jobs import queue
from django_jobs.exceptions import JobCancelled, class_path
from django_jobs.models import Job


def cancelled_while_running(claimed) -> Job:
    """A job cancelled while it ran, then buried by its worker, as a worker does."""
    job = claimed()
    queue.cancel(job.pk)
    error = queue.attempt_error(job, class_path(JobCancelled), "cancelled")
    queue.bury(job.pk, token=job.claim_token, error=error)
    job.refresh_from_db()
    assert (job.state, job.cancel_requested_at is not None) == ("buried", True)
    return job


def test_kick_clears_the_cancel_request(claimed):
    job = cancelled_while_running(claimed)
    assert queue.kick(job.pk) == 1
    job.refresh_from_db()
    assert job.state == "ready"
    assert job.cancel_requested_at is None


def test_kicking_a_list_clears_it_too(claimed):
    first, second = cancelled_while_running(claimed), cancelled_while_running(claimed)
    assert queue.kick([first.pk, second.pk]) == 2
    assert not Job.objects.filter(cancel_requested_at__isnull=False).exists()


def test_the_next_claim_is_not_asked_to_stop(claimed):
    job = cancelled_while_running(claimed)
    queue.kick(job.pk)
    (again,) = queue.claim(worker_id="w2", limit=1)
    assert again.pk == job.pk
    # What a supervisor polls for the jobs it holds: nothing to stop.
    assert not Job.objects.filter(
        pk=again.pk, cancel_requested_at__isnull=False
    ).exists()
