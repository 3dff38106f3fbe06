"""An operator cancels a running job, then retries it: it runs to the end.

Before retries cleared the cancel request, the worker that claimed the
retried job stopped it at once ("cancelled; stopping it") and buried it
again, burning an attempt each time.
"""

from django.core.management import call_command

from django_jobs import queue
from django_jobs.models import Job
from tests import tasks
from tests.acceptance.conftest import wait_for
from tests.models import Record


def test_a_cancelled_job_that_is_retried_runs_to_the_end(start_worker):
    result = tasks.hang_first_attempt.using(max_attempts=3).enqueue("retried")
    worker = start_worker("--concurrency", "1")
    wait_for(lambda: Record.objects.filter(key="retried").exists())
    queue.cancel(int(result.id))
    wait_for(
        lambda: Job.objects.filter(pk=result.id, state="buried").exists(),
        timeout=15,
        message="the cancelled job to be buried",
    )
    call_command("jobs", "retry", result.id)
    job = wait_for(
        lambda: Job.objects.filter(pk=result.id, state__in=["done", "buried"]).first(),
        timeout=20,
        message="the retried job to finish",
    )
    assert (job.state, job.attempts, job.return_value) == ("done", 2, "attempt 2")
    assert worker.output.count("cancelled; stopping it") == 1  # the first run only
