"""Guarantee 6: SIGTERM and SIGINT stop a worker gracefully."""

import signal

from django_jobs.models import Job, Worker
from tests import tasks
from tests.acceptance.conftest import process_exists, wait_for
from tests.models import Record


def reserved(result):
    return Job.objects.filter(pk=result.id, state="reserved").exists()


def test_sigterm_lets_running_jobs_finish_and_claims_no_more(start_worker):
    running = tasks.sleep.enqueue(2, key="running")
    worker = start_worker("--concurrency", "1")
    wait_for(lambda: Record.objects.filter(key="running").exists(), message="start")
    waiting = tasks.add.enqueue(1, 2)
    worker.send(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, worker.output
    assert Job.objects.get(pk=running.id).state == "done"
    assert Job.objects.get(pk=waiting.id).state == "ready"
    assert not Worker.objects.exists()
    assert "SIGTERM: waiting for 1 running job(s)" in worker.output


def test_sigterm_with_an_idle_worker(start_worker):
    worker = start_worker()
    wait_for(Worker.objects.exists, message="registration")
    worker.send(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, worker.output
    assert not Worker.objects.exists()


def test_jobs_still_running_at_the_shutdown_timeout_go_back_unfinished(start_worker):
    result = tasks.sleep.enqueue(60, key="long")
    worker = start_worker("--shutdown-timeout", "1")
    record = wait_for(
        lambda: Record.objects.filter(key="long").first(), message="start"
    )
    worker.send(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, worker.output
    job = Job.objects.get(pk=result.id)
    assert (job.state, job.attempts, job.worker_ids, job.errors) == ("ready", 0, [], [])
    assert not process_exists(record.pid)
    assert "released unfinished" in worker.output


def test_a_second_sigint_stops_at_once(start_worker):
    result = tasks.sleep.enqueue(60, key="long")
    worker = start_worker("--shutdown-timeout", "60")
    record = wait_for(
        lambda: Record.objects.filter(key="long").first(), message="start"
    )
    worker.send(signal.SIGINT)
    wait_for(lambda: "SIGINT: waiting for" in worker.output, message="first SIGINT")
    assert process_exists(record.pid)
    worker.send(signal.SIGINT)
    assert worker.wait(timeout=15) == 0, worker.output
    job = Job.objects.get(pk=result.id)
    assert (job.state, job.attempts) == ("ready", 0)
    assert not process_exists(record.pid)
