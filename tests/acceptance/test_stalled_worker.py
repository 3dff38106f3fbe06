"""A worker stopped past WORKER_TIMEOUT loses its jobs, and knows it when back.

SIGSTOP freezes the supervisor, not its children: the job it was running
goes on. Another worker's rescuer takes that job back (its worker is
silent), so it may run twice: that is the duplicate window of the
at-least-once guarantee. What must not happen: the stalled worker, once
resumed, letting its child run on for a job that is no longer its own, or
anyone taking the jobs it claims after it came back.
"""

import signal

from django_jobs.models import Job
from tests import tasks
from tests.acceptance.conftest import process_exists, wait_for
from tests.models import Record


def test_a_worker_back_from_a_stall_stops_what_it_lost_and_keeps_what_it_claims(
    start_worker,
):
    held = tasks.hang_first_attempt.enqueue("held", 60)
    stalled = start_worker("--concurrency", "1")
    first_run = wait_for(lambda: Record.objects.filter(key="held").first())
    stalled.send(signal.SIGSTOP)
    try:
        # A rescuer that claims nothing itself (it serves another queue).
        start_worker("--queue", "elsewhere")
        wait_for(
            lambda: Job.objects.filter(pk=held.id, state="ready").exists(),
            timeout=20,
            message="the held job taken back from the stalled worker",
        )
        fresh = tasks.record_pid.enqueue("fresh")
    finally:
        stalled.send(signal.SIGCONT)

    # Back, the worker learns the held job is no longer its own: it stops
    # the child still running it, at once, rather than after its 60 s.
    wait_for(
        lambda: not process_exists(first_run.pid),
        timeout=5,
        message="the first run stopped",
    )
    wait_for(
        lambda: (
            Job.objects.filter(pk__in=[held.id, fresh.id], state="done").count() == 2
        ),
        timeout=30,
        message="both jobs done",
    )
    job = Job.objects.get(pk=held.id)
    assert (job.attempts, job.return_value) == (2, "attempt 2")
    assert [e["exception_class_path"] for e in job.errors] == [
        "django_jobs.exceptions.WorkerLost"
    ]
    fresh_job = Job.objects.get(pk=fresh.id)
    assert (fresh_job.attempts, fresh_job.errors) == (1, [])
    assert Record.objects.filter(key="fresh").count() == 1
    assert "its claim was lost; stopping it now" in stalled.output
    stalled.send(signal.SIGTERM)
    assert stalled.wait(timeout=30) == 0, stalled.output
