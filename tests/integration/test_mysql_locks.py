"""Guarded writes on MariaDB/MySQL lock only the rows their guard matches.

MariaDB's ``SELECT ... FOR UPDATE`` waits on every locked row its scan
reads, matching or not (its ``UPDATE`` reads the last committed version of
a locked row and skips it when it does not match; the locking read does
not). A guarded write that locked through a scan of the guard's index would
wait for any transaction holding an unrelated job: a paused worker's claim
or completion stalled the rescuer and the touches of other workers (the
soak's duplicate and late job). ``queue.mysql.lock_matching`` reads the
candidates without locking and locks them by primary key. Likewise a
limited queue's claim skips the queue's row while another claim holds it,
and the rescuer forgets silent workers without a DELETE whose subquery
locks jobs.
"""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import timedelta

import pytest
from django.db import OperationalError, connection, connections, transaction
from django.utils import timezone

from django_jobs import queue
from django_jobs.models import Job, Queue, Worker
from django_jobs.queue import mysql, sql
from django_jobs.queue.duties import forget_silent_workers
from tests import key_tasks
from tests import workflow_tasks as w

pytestmark = pytest.mark.skipif(
    connection.vendor != "mysql", reason="InnoDB's row locks (MariaDB/MySQL only)"
)

#: Seconds a statement of the test waits for a row lock before error 1205.
LOCK_WAIT = 2


def held(job_id: int, then=None):
    """Hold a lock on the job ``job_id`` in another connection's transaction
    (running ``then`` in it before it commits, when the block ends)."""
    return held_row(Job, job_id, then)


@contextlib.contextmanager
def held_row(model, pk: int, then=None):
    """Hold a lock on the row ``pk`` of ``model`` in another connection's
    transaction (running ``then`` in it before it commits)."""
    locked, release = threading.Event(), threading.Event()
    errors = []

    def hold():
        try:
            with transaction.atomic():
                list(model.objects.select_for_update().filter(pk=pk))
                locked.set()
                release.wait(10)
                if then is not None:
                    then()
        except Exception as exc:  # reported by the test
            errors.append(exc)
        finally:
            locked.set()
            connections.close_all()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert locked.wait(10)
    try:
        yield release
    finally:
        release.set()
        thread.join(10)
        assert not thread.is_alive()
        assert not errors


def short_lock_wait() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"SET SESSION innodb_lock_wait_timeout = {LOCK_WAIT}")


def two_ready_jobs() -> tuple[int, int]:
    """Two ready jobs that only an unindexed column tells apart."""
    other = w.crawl.using(max_attempts=3).enqueue("other")
    mine = w.crawl.using(max_attempts=5).enqueue("mine")
    return int(other.id), int(mine.id)


def test_a_guarded_write_does_not_wait_on_a_locked_row_it_does_not_match(
    transactional_db,
):
    other, mine = two_ready_jobs()
    short_lock_wait()
    guard = Job.objects.filter(state="ready", max_attempts=5)
    with held(other):
        # The premise: a locking read of the same guard waits on the row.
        with pytest.raises(OperationalError) as waited, transaction.atomic():
            list(guard.select_for_update().order_by("pk").values_list("pk"))
        assert mysql.error_number(waited.value) == 1205
        started = time.monotonic()
        written = sql.update_returning(guard, {"priority": 9}, ["id", "priority"])
        assert time.monotonic() - started < LOCK_WAIT / 2
    assert written == [{"id": mine, "priority": 9}]
    assert Job.objects.get(pk=other).priority != 9


def test_a_locked_row_the_guard_matches_is_waited_for_and_checked_again(
    transactional_db,
):
    _, mine = two_ready_jobs()
    guard = Job.objects.filter(state="ready", max_attempts=5)

    def move_it():
        Job.objects.filter(pk=mine).update(max_attempts=6)

    with held(mine, then=move_it) as release:
        threading.Timer(0.3, release.set).start()
        started = time.monotonic()
        written = sql.update_returning(guard, {"priority": 9}, ["id"])
        assert time.monotonic() - started >= 0.25  # it waited for the holder
    assert written == []  # which moved the row out of the guard meanwhile
    assert Job.objects.get(pk=mine).priority != 9


def test_a_rescue_is_not_held_up_by_a_locked_job_still_held(transactional_db):
    two_ready_jobs()
    lost, kept = queue.claim(worker_id="w-1", limit=2)
    Job.objects.filter(pk=lost.pk).update(
        reserved_until=timezone.now() - timedelta(minutes=1)
    )
    short_lock_wait()
    with held(kept.pk):  # its worker is busy with it (a completion, paused)
        started = time.monotonic()
        counts = queue.rescue()
        assert time.monotonic() - started < LOCK_WAIT / 2
    assert sum(counts.values()) == 1
    assert Job.objects.get(pk=lost.pk).state != "reserved"
    assert Job.objects.get(pk=kept.pk).state == "reserved"


def test_a_limited_claim_skips_a_queue_another_claim_holds(transactional_db):
    queue.configure("keyed", key_concurrency=2)
    key_tasks.for_customer.enqueue("a")
    short_lock_wait()
    (held_queue,) = Queue.objects.filter(name="keyed")
    with held_row(Queue, held_queue.pk):  # a claimer paused in its claim
        started = time.monotonic()
        assert queue.claim(worker_id="w-2", queues=["keyed"]) == []
        assert time.monotonic() - started < LOCK_WAIT / 2
    (job,) = queue.claim(worker_id="w-2", queues=["keyed"])  # once it is over
    assert job.limit_key == "a"


def test_silent_workers_are_forgotten_without_waiting_on_a_held_job(
    transactional_db,
):
    long_ago = timezone.now() - timedelta(minutes=5)
    Worker.objects.create(id="silent", hostname="h", pid=1, concurrency=1)
    Worker.objects.filter(pk="silent").update(last_heartbeat=long_ago)
    Worker.objects.create(id="busy", hostname="h", pid=2, concurrency=1)
    two_ready_jobs()
    busy_job, _ = queue.claim(worker_id="busy", limit=2)
    short_lock_wait()
    with held(busy_job.pk):  # its worker, alive, is completing it (paused)
        started = time.monotonic()
        gone = forget_silent_workers("default", timezone.now() - timedelta(minutes=1))
        assert time.monotonic() - started < LOCK_WAIT / 2
    assert gone == 1
    assert list(Worker.objects.values_list("pk", flat=True)) == ["busy"]


def test_a_rescue_passes_over_a_lost_job_whose_holder_is_writing_it(
    transactional_db,
):
    two_ready_jobs()
    lost, _ = queue.claim(worker_id="w-1", limit=2)
    Job.objects.filter(pk=lost.pk).update(
        reserved_until=timezone.now() - timedelta(minutes=1)
    )
    short_lock_wait()
    with held(lost.pk):  # its worker, paused in a write of it
        started = time.monotonic()
        counts = queue.rescue()
        assert time.monotonic() - started < LOCK_WAIT / 2
    assert sum(counts.values()) == 0
    assert Job.objects.get(pk=lost.pk).state == "reserved"
    assert sum(queue.rescue().values()) == 1  # the next pass takes it back
    assert Job.objects.get(pk=lost.pk).state != "reserved"
