"""A claim in doubt: committed, but its worker got an error instead of the jobs
(the connection broke before the reply came, or the server failed over after
the commit reached its standby). Its jobs go back uncounted before the
worker claims again, instead of waiting for the rescuer with an attempt
counted (docs/deploying.rst, "High availability")."""

from __future__ import annotations

import logging
import os
import signal
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from django_jobs import queue
from django_jobs.models import Job
from tests import tasks
from tests.reply_lost import ReplyLost

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_worker_gives_back_a_claim_in_doubt_and_runs_its_jobs_once(
    monkeypatch, caplog
):
    ids = [tasks.add.enqueue(n, n).id for n in range(3)]
    reply_lost = ReplyLost(queue.claim)
    monkeypatch.setattr(queue, "claim", reply_lost)
    caplog.set_level(logging.INFO, logger="django_jobs")
    call_command("runworker", "--burst", "--concurrency", "3")
    assert reply_lost.lost, "the first claim reserved nothing"
    assert {job.pk for job in reply_lost.lost} <= {int(pk) for pk in ids}
    assert reply_lost.calls >= 2
    for job in Job.objects.filter(pk__in=ids):
        # As if the lost claim had not happened: one attempt, one worker,
        # no error (the rescuer did not take them back), done.
        assert (job.state, job.attempts, job.errors) == ("done", 1, [])
        assert len(job.worker_ids) == 1
    given_back = [r.getMessage() for r in caplog.records if "given back" in r.msg]
    assert len(given_back) == 1, given_back
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_release_claim_gives_back_only_that_claim_of_that_worker(make_job):
    early = timezone.now() - timedelta(minutes=5)
    mine = [make_job(run_at=early, priority=10).pk for _ in range(2)]
    other = make_job(priority=5).pk
    token = queue.new_claim_token()
    claimed = queue.claim(worker_id="w1", limit=2, token=token)
    assert {job.claim_token for job in claimed} == {token}
    queue.claim(worker_id="w2", limit=1)  # another claim, another worker
    assert queue.release_claim([token], "w2") == []  # not w2's claim
    assert queue.release_claim(["another"], "w1") == []
    assert queue.release_claim([token], "w1") == sorted(mine)
    for job in Job.objects.filter(pk__in=mine):
        assert (job.state, job.attempts, job.worker_ids) == ("ready", 0, [])
        assert (job.claim_token, job.reserved_by, job.reserved_until) == ("", "", None)
        assert job.run_at == early  # it keeps its place in the claim order
    assert Job.objects.get(pk=other).state == "reserved"
    assert queue.release_claim([token], "w1") == []  # once
    # Claimed again, they count their first attempt.
    again = queue.claim(worker_id="w1", limit=2)
    assert sorted(job.pk for job in again) == sorted(mine)
    assert {job.attempts for job in again} == {1}


def test_a_job_the_rescuer_took_back_meanwhile_is_left_alone(make_job):
    job = make_job()
    token = queue.new_claim_token()
    queue.claim(worker_id="w1", token=token)
    Job.objects.filter(pk=job.pk).update(reserved_until=timezone.now())
    queue.rescue(expired_before=timezone.now() + timedelta(seconds=1), backoff=(0, 0))
    (rescued,) = queue.claim(worker_id="w2")  # its next attempt, elsewhere
    assert queue.release_claim([token], "w1") == []
    row = Job.objects.get(pk=job.pk)
    assert (row.state, row.attempts, row.reserved_by) == ("reserved", 2, "w2")
    assert rescued.claim_token == row.claim_token


def test_one_claim_reserves_all_its_jobs_under_one_token(make_job):
    """A limited queue is claimed in a transaction of its own, before the
    rest: a claim that fails after it committed is given back whole."""
    queue.configure("slow", max_concurrency=5)
    limited, other = make_job(queue="slow").pk, make_job().pk
    token = queue.new_claim_token()
    jobs = queue.claim(worker_id="w1", limit=5, token=token)
    assert sorted(job.pk for job in jobs) == sorted([limited, other])
    assert queue.release_claim([token], "w1") == sorted([limited, other])


class StopAfterLosingTheReply(ReplyLost):
    """The first claim's reply is lost, and the worker is told to stop right
    then (a deploy): it claims no more, so it gives the claim back as it
    closes instead of at its next claim."""

    def __call__(self, *args, **kwargs):
        if self.calls == 0:
            os.kill(os.getpid(), signal.SIGTERM)  # handled after this call
        return super().__call__(*args, **kwargs)


def test_a_worker_that_stops_gives_back_a_claim_in_doubt(monkeypatch, caplog):
    ids = [tasks.add.enqueue(n, n).id for n in range(2)]
    reply_lost = StopAfterLosingTheReply(queue.claim)
    monkeypatch.setattr(queue, "claim", reply_lost)
    caplog.set_level(logging.INFO, logger="django_jobs")
    call_command("runworker", "--burst", "--concurrency", "2")
    assert reply_lost.lost, "the first claim reserved nothing"
    assert reply_lost.calls == 1  # it claimed no more
    for job in Job.objects.filter(pk__in=ids):
        assert (job.state, job.attempts, job.errors) == ("ready", 0, [])
    assert [r for r in caplog.records if "given back" in r.msg]
