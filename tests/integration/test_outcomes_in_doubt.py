"""Outcomes in doubt: the recorder's write was committed, but the connection
broke before the reply came. The write is made again once the database is
back, finds the claim finished, and must recognise its own first write
instead of reporting the claim lost (docs/deploying.rst, "High
availability"). No processes: the recorder on a real database."""

from __future__ import annotations

import logging

import pytest
from django.db import OperationalError

from django_jobs import queue
from django_jobs.attempts import Kind
from django_jobs.backend import jobs_backend
from django_jobs.exceptions import TaskNotImportable, class_path
from django_jobs.models import Job
from django_jobs.worker.failures import Failure
from django_jobs.worker.options import WorkerOptions
from django_jobs.worker.outage import DatabaseHealth
from django_jobs.worker.outcomes import Recorder
from tests.reply_lost import ReplyLost

pytestmark = pytest.mark.django_db(transaction=True)

IN_DOUBT = "recorded by an earlier write whose reply was lost"


@pytest.fixture
def recorder() -> Recorder:
    options = WorkerOptions(backend=jobs_backend("default"))
    return Recorder(options, DatabaseHealth(options.backend.db))


@pytest.fixture
def said(caplog):
    """The job lines logged at INFO and above, as (level, message)."""
    caplog.set_level(logging.INFO, logger="django_jobs")

    def lines() -> list[tuple[str, str]]:
        return [
            (record.levelname, record.getMessage())
            for record in caplog.records
            if record.name == "django_jobs.job"
        ]

    return lines


def lose_reply(monkeypatch, name: str) -> ReplyLost:
    """The next call of ``queue.<name>`` is committed, its reply lost."""
    reply_lost = ReplyLost(getattr(queue, name))
    monkeypatch.setattr(queue, name, reply_lost)
    return reply_lost


def flush_twice(recorder: Recorder) -> None:
    """The first flush meets the broken connection; the next one gets
    through (the database is back) and makes the write again."""
    assert not recorder.flush()
    assert recorder.pending
    assert recorder.flush()
    assert not recorder.pending


def test_a_completion_in_doubt_is_recorded_once(recorder, claimed, said, monkeypatch):
    first, second = claimed(), claimed()
    reply_lost = lose_reply(monkeypatch, "complete_returning")
    recorder.succeeded(first, {"answer": 42}, 0.01)
    recorder.succeeded(second, 7, 0.01)
    flush_twice(recorder)
    assert reply_lost.calls == 2
    lines = said()
    assert [level for level, _ in lines] == ["INFO", "INFO"], lines
    assert all(IN_DOUBT in message for _, message in lines), lines
    for job, value in ((first, {"answer": 42}), (second, 7)):
        row = Job.objects.get(pk=job.pk)
        assert (row.state, row.attempts, row.return_value) == ("done", 1, value)
        assert (job.state, job.claim_token) == ("done", "")  # our copy too


@pytest.mark.parametrize(
    ("kind", "max_attempts", "write", "state", "words"),
    [
        (Kind.RAISED, 2, "fail", "ready", "retried"),
        (Kind.CRASHED, 1, "fail", "buried", "buried"),
        (Kind.NOT_A_TASK, 3, "bury_held", "buried", "buried"),
        (Kind.NOT_IMPORTABLE, 1, "postpone", "ready", "the attempt not counted"),
    ],
)
def test_a_failure_in_doubt_is_recorded_once(
    recorder, claimed, said, monkeypatch, kind, max_attempts, write, state, words
):
    job = claimed(max_attempts=max_attempts)
    path = class_path(TaskNotImportable if kind is Kind.NOT_IMPORTABLE else OSError)
    lose_reply(monkeypatch, write)
    recorder.failed(Failure(job, kind, path, "OSError: it broke\n"))
    flush_twice(recorder)
    [(level, message)] = said()
    assert level == "WARNING", message
    assert f"{words} ({IN_DOUBT})" in message
    row = Job.objects.get(pk=job.pk)
    assert row.state == state
    assert len(row.errors) == 1  # one entry: the write was made once
    assert row.errors[0]["exception_class_path"] == path
    assert (job.state, job.errors) == (state, row.errors)  # our copy too


def test_a_deletion_in_doubt_is_recorded_once(recorder, claimed, said, monkeypatch):
    job = claimed(max_attempts=1, on_failure="delete")
    lose_reply(monkeypatch, "fail")
    recorder.failed(Failure(job, Kind.RAISED, "builtins.OSError", "OSError\n"))
    flush_twice(recorder)
    assert not Job.objects.filter(pk=job.pk).exists()
    [(level, message)] = said()
    assert (level, f"deleted ({IN_DOUBT})" in message) == ("WARNING", True)


def test_a_claim_really_lost_is_still_reported(recorder, claimed, said):
    """Taken back (the rescuer retried it) before this worker wrote anything:
    the rows show another writer's work, so the claim was lost."""
    done, failed = claimed(), claimed(max_attempts=3)
    for job in (done, failed):
        rescued = Job.objects.get(pk=job.pk)
        queue.fail(rescued, queue.attempt_error(rescued, "x.WorkerLost", "lost\n"))
    recorder.succeeded(done, 1, 0.01)
    recorder.failed(Failure(failed, Kind.RAISED, "builtins.OSError", "OSError\n"))
    assert recorder.flush()
    lines = said()
    assert [level for level, _ in lines] == ["ERROR", "ERROR"], lines
    assert all("this claim on it was lost" in message for _, message in lines)
    assert len(Job.objects.get(pk=failed.pk).errors) == 1  # the rescuer's


def test_a_failure_of_a_job_whose_row_is_gone_is_reported(recorder, claimed, said):
    """Gone without the worker deleting it: said, and the worker goes on."""
    job = claimed(max_attempts=3)
    Job.objects.filter(pk=job.pk).delete()
    recorder.failed(Failure(job, Kind.RAISED, "builtins.OSError", "OSError\n"))
    assert recorder.flush()
    [(level, message)] = said()
    assert (level, f"Job {job.pk} does not exist" in message) == ("ERROR", True)


def test_the_output_of_an_attempt_waits_with_its_outcome(
    recorder, claimed, monkeypatch
):
    """The database is away at the first try: nothing is written, and the
    attempt's output is written with its outcome once it is back."""
    job = claimed()
    save_logs = queue.save_logs

    def away(*args, **kwargs):
        monkeypatch.setattr(queue, "save_logs", save_logs)  # back after this
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(queue, "save_logs", away)
    recorder.keep_logs(job, "printed\n", False)
    recorder.succeeded(job, None, 0.01)
    flush_twice(recorder)
    row = Job.objects.get(pk=job.pk)
    assert row.state == "done"
    assert row.logs == [{"attempt": 1, "text": "printed\n", "truncated": False}]
