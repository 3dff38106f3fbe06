"""The supervisor's recorder, leases and duties, on a real database, without
processes: what each outcome writes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs import queue
from django_jobs.attempts import Kind
from django_jobs.backend import jobs_backend
from django_jobs.compat import task_finished, task_started
from django_jobs.exceptions import class_path
from django_jobs.models import Job
from django_jobs.worker.duties import Pruner
from django_jobs.worker.failures import Failure
from django_jobs.worker.fleet import Registry
from django_jobs.worker.leases import LOST, Leases
from django_jobs.worker.options import WorkerOptions
from django_jobs.worker.outage import DatabaseHealth
from django_jobs.worker.outcomes import Recorder

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def recorder() -> Recorder:
    options = WorkerOptions(backend=jobs_backend("default"))
    return Recorder(options, DatabaseHealth(options.backend.db))


def stored(job: Job) -> Job:
    return Job.objects.get(pk=job.pk)


def test_a_success_is_written_with_its_output(recorder, claimed):
    job = claimed()
    recorder.keep_logs(job, "printed\n", False)
    recorder.succeeded(job, {"answer": 42}, 0.01)
    assert recorder.flush()
    row = stored(job)
    assert (row.state, row.return_value) == ("done", {"answer": 42})
    assert row.logs == [{"attempt": 1, "text": "printed\n", "truncated": False}]
    assert not recorder.pending


def test_a_raised_failure_is_retried_then_buried(recorder, claimed):
    job = claimed(max_attempts=2)
    recorder.failed(Failure(job, Kind.RAISED, "builtins.ValueError", "ValueError\n"))
    recorder.flush()
    assert stored(job).state == "ready"
    (again,) = queue.claim(worker_id="w1", limit=1)
    recorder.failed(Failure(again, Kind.RAISED, "builtins.ValueError", "ValueError\n"))
    recorder.flush()
    assert (stored(job).state, len(stored(job).errors)) == ("buried", 2)


def test_a_path_that_is_not_a_task_is_buried_at_once(recorder, claimed):
    job = claimed(max_attempts=5)
    recorder.failed(Failure(job, Kind.NOT_A_TASK, "x.TaskNotFound", "no Task\n"))
    recorder.flush()
    assert (stored(job).state, stored(job).attempts) == ("buried", 1)


def test_a_path_that_does_not_import_waits_uncounted_then_is_buried(recorder, claimed):
    job = claimed(max_attempts=1)
    path = "django_jobs.exceptions.TaskNotImportable"
    recorder.failed(Failure(job, Kind.NOT_IMPORTABLE, path, "cannot be imported\n"))
    recorder.flush()
    row = stored(job)
    assert (row.state, row.attempts, row.worker_ids) == ("ready", 0, [])
    assert row.run_at > timezone.now()  # tried again later
    # Past IMPORT_GRACE (3 s in the test settings) since the first try:
    first = (timezone.now() - timedelta(seconds=10)).isoformat()
    Job.objects.filter(pk=job.pk).update(
        errors=[{**row.errors[0], "at": first}], run_at=timezone.now()
    )
    (again,) = queue.claim(worker_id="w1", limit=1)
    recorder.failed(Failure(again, Kind.NOT_IMPORTABLE, path, "still not\n"))
    recorder.flush()
    assert stored(job).state == "buried"


def test_a_failure_of_a_lost_claim_writes_nothing(recorder, claimed):
    job = claimed()
    Job.objects.filter(pk=job.pk).update(claim_token="another")  # taken back
    recorder.failed(Failure(job, Kind.CRASHED, class_path(RuntimeError), "x\n"))
    assert recorder.flush()  # ClaimLost is logged, not raised
    assert len(stored(job).errors) == 0


def test_leases_renew_and_checkpoint(claimed):
    job = claimed(ttr=30)
    leases = Leases("default", DatabaseHealth("default"))
    before = job.reserved_until
    assert leases.renew(job, 600) is None
    assert job.reserved_until > before + timedelta(seconds=500)
    assert stored(job).reserved_until == job.reserved_until
    assert leases.checkpoint(job, {"page": 3}) is None
    assert stored(job).checkpoint == {"page": 3}
    Job.objects.filter(pk=job.pk).update(claim_token="another")
    assert leases.renew(job) is LOST


def test_the_pruner_and_the_heartbeat_reads_the_limited_queues(claimed):
    options = WorkerOptions(backend=jobs_backend("default"))
    old = claimed()
    queue.complete(old.pk, token=old.claim_token)
    Job.objects.filter(pk=old.pk).update(
        finished_at=timezone.now() - timedelta(days=30)
    )
    assert Pruner(options).run_once() == {"done": 1, "buried": 0}
    queue.configure("slow", max_concurrency=1)
    registry = Registry(options, "w-limits", room=lambda: 1)
    registry.register()
    assert registry.limited_queues == ["slow"]


def test_a_jobs_task_is_resolved_once_for_both_its_signals(
    recorder, claimed, monkeypatch
):
    job = claimed()
    resolved, sent = [], []
    task_for = recorder.backend.task_for
    monkeypatch.setattr(
        recorder.backend, "task_for", lambda j: resolved.append(j.pk) or task_for(j)
    )

    def receiver(sender, task_result, **kwargs):
        sent.append(task_result)

    task_started.connect(receiver)
    task_finished.connect(receiver)
    try:
        recorder.job_started(job)
        recorder.succeeded(job, 7, 0.01)
        assert recorder.flush()
    finally:
        task_started.disconnect(receiver)
        task_finished.disconnect(receiver)
    assert resolved == [job.pk]
    assert [r.status.name for r in sent] == ["RUNNING", "SUCCESSFUL"]
    assert sent[0].task is sent[1].task
    assert recorder.tasks == {}


def test_a_retried_jobs_finished_signal_tells_its_next_run(recorder, claimed):
    """The Task resolved at the start is reused, except after a retry: the
    row's new run_at is the Task's run_after, as the signal always said."""
    job = claimed(max_attempts=2)
    sent = []

    def receiver(sender, task_result, **kwargs):
        sent.append(task_result)

    task_started.connect(receiver)
    task_finished.connect(receiver)
    try:
        recorder.job_started(job)
        recorder.failed(Failure(job, Kind.RAISED, "builtins.ValueError", "x\n"))
        assert recorder.flush()
    finally:
        task_started.disconnect(receiver)
        task_finished.disconnect(receiver)
    assert sent[0].task.run_after is None
    assert sent[1].task.run_after == stored(job).run_at
