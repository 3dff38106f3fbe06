"""Touches and checkpoints the database cannot take while it is away: the
supervisor's leases keep them and write them once it is back (docs/tasks.rst,
"Long jobs: touch"). No processes: the database's absence is an
OperationalError from the one statement a renewal makes."""

from __future__ import annotations

import logging
import selectors
import socket
from collections import deque
from datetime import timedelta

import pytest
from django.db import DataError, OperationalError
from django.utils import timezone

from django_jobs import queue
from django_jobs.models import Job
from django_jobs.worker import leases as leases_module
from django_jobs.worker.children import Child, Children
from django_jobs.worker.events import ChildEvents
from django_jobs.worker.failures import Stop
from django_jobs.worker.leases import RAN_OUT, Leases, Refused
from django_jobs.worker.outage import DatabaseHealth

pytestmark = pytest.mark.django_db(transaction=True)


class Away:
    """``queue.touch`` as the leases call it, failing while ``down``."""

    def __init__(self) -> None:
        self.down = True
        self.tries = 0
        self.touch = queue.touch

    def __call__(self, *args, **kwargs):
        self.tries += 1
        if self.down:
            raise OperationalError("server closed the connection unexpectedly")
        return self.touch(*args, **kwargs)


@pytest.fixture
def away(monkeypatch) -> Away:
    touch = Away()
    monkeypatch.setattr(leases_module.queue, "touch", touch)
    return touch


@pytest.fixture
def leases() -> Leases:
    leases = Leases("default", DatabaseHealth("default"))
    leases.moved, leases.lost = [], []
    leases.on_moved = leases.moved.append
    leases.on_lost = leases.lost.append
    return leases


def stored(job: Job) -> Job:
    return Job.objects.get(pk=job.pk)


def test_a_renewal_is_kept_while_the_database_is_away_and_written_when_back(
    leases, away, claimed
):
    job = claimed(ttr=30)
    before = job.reserved_until
    assert leases.renew(job, 600) is None  # the job goes on
    assert leases.checkpoint(job, {"page": 2}) is None
    assert leases.checkpoint(job, {"page": 3}) is None
    assert job.reserved_until == before  # the deadline the row still holds
    assert leases.pending
    assert not leases.flush()  # still away
    away.down = False
    assert leases.flush()
    row = stored(job)
    assert row.checkpoint == {"page": 3}  # the latest, once
    assert row.reserved_until == job.reserved_until
    assert row.reserved_until > before  # the ttr of the last ask, from then
    assert (leases.pending, leases.moved) == (False, [job])


def test_a_touch_asked_for_a_while_is_kept_for_that_long(leases, away, claimed):
    job = claimed(ttr=30)
    leases.renew(job, 600)
    away.down = False
    leases.flush()
    assert stored(job).reserved_until > timezone.now() + timedelta(seconds=500)


def test_while_the_database_is_away_a_renewal_waits_for_the_next_try(
    leases, away, claimed
):
    job = claimed(ttr=30)
    leases.renew(job)
    leases.renew(job)  # the database was just found away: not tried again yet
    leases.checkpoint(job, {"page": 1})
    assert away.tries <= 2  # a dropped connection is tried again once, at once
    assert leases.health.away


def test_a_renewal_is_not_kept_once_the_reservation_has_run_out(leases, away, claimed):
    job = claimed(ttr=30)
    assert leases.checkpoint(job, {"page": 1}) is None
    job.reserved_until = timezone.now() - timedelta(seconds=1)
    assert leases.checkpoint(job, {"page": 2}) == RAN_OUT  # NotRecorded in the job
    away.down = False
    Job.objects.filter(pk=job.pk).update(reserved_until=job.reserved_until)
    assert leases.flush()
    assert stored(job).checkpoint == {"page": 1}  # what was kept is not lost


def test_a_kept_renewal_of_a_claim_lost_meanwhile_is_dropped_and_reported(
    leases, away, claimed
):
    job = claimed(ttr=30)
    leases.checkpoint(job, {"page": 1})
    Job.objects.filter(pk=job.pk).update(claim_token="another")  # rescued
    away.down = False
    assert leases.flush()
    assert (leases.pending, leases.lost) == (False, [job])
    assert stored(job).checkpoint is None


def test_a_kept_touch_whose_reservation_is_over_is_not_written(leases, away, claimed):
    job = claimed(ttr=30)
    leases.renew(job, 1)
    leases.kept[job.pk].until -= timedelta(seconds=2)  # as if asked 2 s ago
    away.down = False
    tries = away.tries
    assert leases.flush()
    assert away.tries == tries
    assert not leases.pending


def test_a_renewal_the_database_refuses_is_one_line_and_not_kept(
    leases, monkeypatch, claimed, caplog
):
    def refuse(*args, **kwargs):
        raise DataError("value too long\nDETAIL:  Failing row contains (...).\n")

    monkeypatch.setattr(leases_module.queue, "touch", refuse)
    job = claimed(ttr=30)
    assert leases.checkpoint(job, {"page": 1}) == Refused(
        "the database refused it (value too long)"
    )  # NotRecorded in the job
    assert not leases.pending
    [line] = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert line.endswith("could not save a checkpoint: value too long")


class ReleaseSees:
    """A recorder that notes the checkpoint a release finds in the row."""

    def __init__(self) -> None:
        self.seen = []

    def release(self, job: Job) -> None:
        self.seen.append(stored(job).checkpoint)


def test_a_job_released_at_shutdown_keeps_its_kept_checkpoint(leases, away, claimed):
    """The drain gives back a job whose last checkpoint waited for the
    database: the checkpoint is written before the job goes back to ready,
    so that its next attempt resumes from it."""
    job = claimed(ttr=30)
    assert leases.checkpoint(job, {"page": 7}) is None  # kept: the database is away
    away.down = False
    recorder = ReleaseSees()
    events = ChildEvents(
        children=Children(1, 1, selectors.DefaultSelector()), recorder=recorder,
        leases=leases, portions=None, claimer=None, watch=None, shutdown=None,
    )  # fmt: skip
    ours, theirs = socket.socketpair()
    with ours, theirs:
        gone = Child(pid=0, sock=ours, jobs=deque([job]), stopping=Stop.SHUTDOWN)
        events.lost_child(gone, "killed by signal 9 (SIGKILL)")
    assert recorder.seen == [{"page": 7}]
    assert not leases.pending
