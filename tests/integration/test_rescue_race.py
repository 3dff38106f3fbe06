"""The rescuer takes back only what a silent worker held when it went silent.

A worker that stops (SIGSTOP, a long pause, a database it could not reach)
may come back and claim new jobs before another worker's rescuer has
finished its pass. Those jobs are the live worker's: taking them would run
them twice at the same time.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs import queue
from django_jobs.backend import jobs_backend
from django_jobs.models import Job, Worker
from django_jobs.queue import duties
from django_jobs.worker.duties import Rescuer
from django_jobs.worker.options import WorkerOptions

pytestmark = pytest.mark.django_db(transaction=True)


def rescuer() -> Rescuer:
    return Rescuer(WorkerOptions(backend=jobs_backend("default")))


def silent_worker(name: str, seconds: float) -> Worker:
    worker = Worker.objects.create(id=name, hostname="h", pid=1, concurrency=1)
    Worker.objects.filter(pk=name).update(
        last_heartbeat=timezone.now() - timedelta(seconds=seconds)
    )
    return worker


def claimed_at(make_job, worker: str, seconds_ago: float) -> Job:
    job = make_job(priority=100, max_attempts=5)
    (mine,) = queue.claim(worker_id=worker, limit=1)
    assert mine.pk == job.pk
    Job.objects.filter(pk=job.pk).update(
        last_attempted_at=timezone.now() - timedelta(seconds=seconds_ago)
    )
    return mine


def test_a_worker_that_claimed_since_its_last_heartbeat_is_alive(make_job):
    # The worker heartbeated 10 s ago, then stopped, holding a job it had
    # claimed before. It came back, failed one heartbeat (the database was
    # away) and claimed another job just now: it is alive, and keeps both.
    silent_worker("w1", 10)
    held_before = claimed_at(make_job, "w1", 20)
    claimed_since = claimed_at(make_job, "w1", 0)

    counts = rescuer().run_once()  # WORKER_TIMEOUT is 3 s in the test settings

    assert counts["retried"] == 0
    for job in (held_before, claimed_since):
        row = Job.objects.get(pk=job.pk)
        assert (row.state, row.claim_token) == ("reserved", job.claim_token)
    assert Worker.objects.filter(pk="w1").exists()

    # Silent for longer than WORKER_TIMEOUT since that claim too: dead.
    Job.objects.filter(pk=claimed_since.pk).update(
        last_attempted_at=timezone.now() - timedelta(seconds=5)
    )
    assert rescuer().run_once()["retried"] == 2
    assert not Worker.objects.filter(pk="w1").exists()


def test_a_worker_that_comes_back_during_the_pass_keeps_its_jobs(make_job, monkeypatch):
    silent_worker("w1", 10)
    held = claimed_at(make_job, "w1", 20)
    real_entry = duties.error_entry

    def heartbeat_meanwhile(*args, **kwargs):
        # Between the rescuer's read and its write, the worker is back.
        Worker.objects.filter(pk="w1").update(last_heartbeat=timezone.now())
        return real_entry(*args, **kwargs)

    monkeypatch.setattr(duties, "error_entry", heartbeat_meanwhile)
    counts = rescuer().run_once()

    assert counts == {"retried": 0, "buried": 0, "deleted": 0}
    job = Job.objects.get(pk=held.pk)
    assert (job.state, job.claim_token) == ("reserved", held.claim_token)
    assert Worker.objects.filter(pk="w1").exists()  # a live worker keeps its row


def test_two_rescuers_take_a_job_back_once(make_job, monkeypatch):
    # Two workers' rescuers (a lease handed over mid-pass, say) find the
    # same lost job; the second writes after the first already took it back.
    silent_worker("w1", 10)
    held = claimed_at(make_job, "w1", 20)
    real_entry = duties.error_entry
    other: dict[str, int] = {}

    def other_rescuer_meanwhile(*args, **kwargs):
        if not other:  # between this rescuer's read and its write
            other["running"] = 1
            other.update(rescuer().run_once())
        return real_entry(*args, **kwargs)

    monkeypatch.setattr(duties, "error_entry", other_rescuer_meanwhile)
    counts = rescuer().run_once()

    assert other["retried"] == 1
    assert counts["retried"] == 0
    job = Job.objects.get(pk=held.pk)
    assert job.state == "ready"
    assert job.attempts == 1
    assert len(job.errors) == 1


def test_a_job_whose_worker_has_no_row_waits_for_its_lease(make_job):
    orphan = claimed_at(make_job, "gone", 20)
    assert rescuer().run_once()["retried"] == 0
    Job.objects.filter(pk=orphan.pk).update(
        reserved_until=timezone.now() - timedelta(seconds=60)
    )
    assert rescuer().run_once()["retried"] == 1


def test_silent_workers_rows_are_removed_after_the_rescue(make_job):
    silent_worker("w1", 10)
    Worker.objects.create(id="alive", hostname="h", pid=2, concurrency=1)
    claimed_at(make_job, "w1", 20)
    rescuer().run_once()
    assert list(Worker.objects.values_list("pk", flat=True)) == ["alive"]


def test_the_rescuer_reads_no_arguments(make_job):
    """A rescue pass works past rows whose arguments cannot be loaded."""
    from tests.integration.conftest import write_by_hand

    silent_worker("w1", 10)
    held = claimed_at(make_job, "w1", 20)
    write_by_hand(held.pk, "args", "[" * 1500 + "]" * 1500)
    write_by_hand(held.pk, "reserved_until", "infinity")
    assert rescuer().run_once()["retried"] == 1
