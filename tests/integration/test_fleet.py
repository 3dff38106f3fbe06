"""A fleet of workers on one database: the lease, the rooms, targeted wakes.

The lease tests run on both databases; the wake tests need PostgreSQL's
notifications. Each wake test listens, on connections of its own, on the
channels that the job table's triggers notify.
"""

from __future__ import annotations

import select
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from django_jobs import queue
from django_jobs.backend import jobs_backend
from django_jobs.models import Job, Lease, Worker
from django_jobs.queue.wake import SHARED_CHANNEL
from django_jobs.worker.fleet import Registry
from django_jobs.worker.options import WorkerOptions
from tests import lane_jobs, tasks

pytestmark = pytest.mark.django_db(transaction=True)


def registry(name: str, room: int = 1) -> Registry:
    return Registry(WorkerOptions(backend=jobs_backend("default")), name, lambda: room)


def holder() -> str:
    return Lease.objects.get(name="default").holder


# The lease


def test_the_first_worker_leads_and_the_others_do_not(monotonic):
    first, second = registry("w1"), registry("w2")
    first.register()
    second.register()
    assert first.leads(monotonic())
    assert not second.leads(monotonic())
    assert holder() == "w1"
    # Heartbeats renew the leader's lease and leave the others as they were.
    second.run_once()
    first.run_once()
    assert first.leads(monotonic())
    assert not second.leads(monotonic())


def test_a_lease_not_renewed_passes_to_the_next_worker_that_heartbeats(monotonic):
    first, second = registry("w1"), registry("w2")
    first.register()
    second.register()
    # w1 died or stalls: its lease ran out.
    Lease.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    second.run_once()
    assert second.leads(monotonic())
    assert holder() == "w2"
    # w1 comes back: its next heartbeat tells it that it lost the lease.
    first.run_once()
    assert not first.leads(monotonic())
    assert holder() == "w2"


def test_a_leader_that_stops_hands_the_lease_back(monotonic):
    first, second = registry("w1"), registry("w2")
    first.register()
    second.register()
    first.deregister()
    assert not Worker.objects.filter(pk="w1").exists()
    second.run_once()  # at once, not when the lease would have expired
    assert second.leads(monotonic())


def test_a_lease_row_deleted_by_hand_is_made_again(monotonic):
    first, second = registry("w1"), registry("w2")
    first.register()
    second.register()
    Lease.objects.all().delete()
    second.run_once()
    assert second.leads(monotonic())
    first.run_once()
    assert not first.leads(monotonic())


def test_a_worker_presumed_dead_registers_again_before_it_may_lead(monotonic):
    first = registry("w1")
    first.register()
    Worker.objects.filter(pk="w1").delete()  # another worker's rescuer did
    Lease.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    first.run_once()
    assert first.presumed_dead
    assert Worker.objects.filter(pk="w1").exists()
    assert first.leads(monotonic())


def test_the_heartbeat_writes_the_room_and_the_jobs_in_hand():
    room = [2]
    worker = Registry(
        WorkerOptions(backend=jobs_backend("default")), "w1", lambda: room[0]
    )
    worker.register()
    assert Worker.objects.get(pk="w1").room == 2
    worker.jobs_in_hand = 2
    room[0] = 0
    worker.run_once()
    row = Worker.objects.get(pk="w1")
    assert (row.room, row.jobs_in_hand) == (0, 2)


@pytest.fixture
def monotonic():
    import time

    return time.monotonic


# Targeted wakes (PostgreSQL)


class Ears:
    """Connections that LISTEN on channels, and what they heard."""

    def __init__(self) -> None:
        params = connection.get_connection_params()
        self.connection = psycopg.connect(**params, autocommit=True)

    def listen(self, *channels: str) -> None:
        for channel in channels:
            self.connection.execute(f"LISTEN {channel}")

    def heard(self, wait: float = 0.3) -> list[tuple[str, str]]:
        select.select([self.connection.pgconn.socket], [], [], wait)
        self.connection.pgconn.consume_input()
        heard = []
        while (notify := self.connection.pgconn.notifies()) is not None:
            heard.append((notify.relname.decode(), notify.extra.decode()))
        return sorted(heard)

    def close(self) -> None:
        self.connection.close()


@pytest.fixture
def ears():
    listening = Ears()
    yield listening
    listening.close()


def worker_row(name: str, room: int | None, queues: list[str] | None = None):
    return Worker.objects.create(
        id=name, hostname="h", pid=1, concurrency=4, room=room, queues=queues or []
    )


@pytest.mark.postgres
def test_the_channel_is_the_one_the_database_notifies():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'django_jobs_' || substr(md5(%s), 1, 16)", ["w-1é"])
        assert cursor.fetchone()[0] == queue.channel("w-1é")


@pytest.mark.postgres
def test_a_new_job_wakes_one_worker_with_room_for_it(ears):
    for name, room in [("a", 1), ("b", 1), ("c", 1), ("busy", 0)]:
        worker_row(name, room)
    ears.listen(SHARED_CHANNEL, *(queue.channel(n) for n in "abc"))
    ears.listen(queue.channel("busy"))

    tasks.add.enqueue(1, 2)

    heard = ears.heard()
    assert len(heard) == 1
    assert heard[0][0] in {queue.channel(n) for n in "abc"}
    assert heard[0][1] == "default"


@pytest.mark.postgres
def test_a_bulk_of_jobs_wakes_enough_workers_to_take_them(ears):
    worker_row("a", 2)
    worker_row("b", 2)
    worker_row("c", 2)
    ears.listen(*(queue.channel(n) for n in "abc"))

    tasks.add.enqueue_many([((1, 2), {})] * 3)  # one statement

    assert len(ears.heard()) == 2  # 2 + 2 rooms for 3 jobs


@pytest.mark.postgres
def test_only_workers_that_serve_the_queue_are_woken(ears):
    worker_row("mail", 1, queues=["emails"])
    worker_row("other", 1, queues=["reports"])
    ears.listen(queue.channel("mail"), queue.channel("other"))

    tasks.add.using(queue_name="emails").enqueue(1, 2)

    assert ears.heard() == [(queue.channel("mail"), "emails")]


@pytest.mark.postgres
def test_a_lane_job_wakes_the_lane_worker_not_a_worker_that_skips_it(ears):
    # A worker of every queue leaves the async lane's alone: a lane job's
    # wake-up must not be spent on it, however many times it is drawn.
    Worker.objects.create(
        id="everything", hostname="h", pid=1, concurrency=4, room=50,
        queues=[], skipped_queues=["lane"],
    )  # fmt: skip
    worker_row("lane-worker", 100, queues=["lane"])
    ears.listen(queue.channel("everything"), queue.channel("lane-worker"))
    for _ in range(5):
        lane_jobs.nap.enqueue("woken")
        assert ears.heard() == [(queue.channel("lane-worker"), "lane")]
    tasks.add.enqueue(1, 2)  # its own queues still wake it
    assert ears.heard() == [(queue.channel("everything"), "default")]


def test_a_worker_of_every_queue_says_which_it_skips():
    for queues, skipped in [((), ["lane"]), (("default",), [])]:
        options = WorkerOptions(backend=jobs_backend("default"), queues=queues)
        registry = Registry(options, f"w-{len(queues)}", room=lambda: 1)
        registry.register()
        assert Worker.objects.get(pk=registry.worker_id).skipped_queues == skipped


@pytest.mark.postgres
def test_workers_older_than_the_room_column_hear_every_job(ears):
    worker_row("new", 1)
    worker_row("old", None)
    ears.listen(SHARED_CHANNEL, queue.channel("new"))

    tasks.add.enqueue(1, 2)

    assert set(ears.heard()) == {
        (SHARED_CHANNEL, "default"),
        (queue.channel("new"), "default"),
    }


@pytest.mark.postgres
def test_a_delayed_job_wakes_nobody_until_the_leader_finds_it_due(ears):
    worker_row("a", 1)
    ears.listen(queue.channel("a"))
    result = tasks.add.using(run_after=timedelta(minutes=5)).enqueue(1, 2)
    assert ears.heard() == []
    assert queue.wake_due() == 0

    Job.objects.filter(pk=result.id).update(run_at=timezone.now())  # came due
    ears.heard()  # the update's own wake
    assert queue.wake_due() == 1
    assert ears.heard() == [(queue.channel("a"), "default")]


@pytest.mark.postgres
def test_the_look_for_due_jobs_skips_paused_and_full_queues(ears):
    worker_row("a", 1)
    tasks.add.using(queue_name="paused").enqueue(1, 2)
    tasks.add.using(queue_name="full").enqueue(1, 2)
    queue.pause("paused")
    queue.configure("full", max_concurrency=1)
    running = tasks.add.using(queue_name="full").enqueue(1, 2)
    Job.objects.filter(pk=running.id).update(
        state="reserved", reserved_until=timezone.now() + timedelta(minutes=5)
    )
    ears.listen(queue.channel("a"))

    assert queue.wake_due() == 0
    assert ears.heard(wait=0.1) == []


@pytest.mark.postgres
def test_a_claim_writes_its_workers_room():
    worker_row("w", 4)
    tasks.add.enqueue(1, 2)
    assert len(queue.claim(worker_id="w", limit=3, room=True)) == 1
    assert Worker.objects.get(pk="w").room == 2  # asked for 3, got 1
    assert queue.claim(worker_id="w", limit=3, room=True) == []
    assert Worker.objects.get(pk="w").room == 3


@pytest.mark.postgres
def test_the_supervisors_connection_never_compiles_a_query_with_jit():
    # It disables sequential scans (the claim must walk its index): a scan of
    # a small table with no index for the query then costs, to the planner,
    # enough for JIT, which took 100 ms of CPU per look for due jobs.
    from django.db.backends.signals import connection_created

    from django_jobs.worker.supervisor_connection import configure_supervisor_connection

    connection.ensure_connection()
    configure_supervisor_connection("default")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET jit_above_cost = 0")  # as if the table were big
            cursor.execute(
                "EXPLAIN SELECT id FROM django_jobs_worker WHERE room > 0"
                " ORDER BY random()"
            )
            plan = "\n".join(line for (line,) in cursor.fetchall())
        assert "Seq Scan" in plan  # disabled, and yet the only way
        assert "JIT" not in plan
    finally:
        connection_created.disconnect(dispatch_uid="django_jobs_planner")
        with connection.cursor() as cursor:
            cursor.execute("RESET ALL")


@pytest.mark.postgres
def test_a_claim_writes_the_room_only_when_the_row_may_be_wrong():
    worker = registry("w1", room=0)
    worker.register()
    # The row says no room: a claim that fills the worker again leaves it
    # so, and needs no write; one that comes back short writes on its own.
    assert not worker.claim_writes_room()
    worker.claimed(2, written=False)
    assert Worker.objects.get(pk="w1").room == 2
    # The row says there is room: the claim itself writes what it leaves.
    assert worker.claim_writes_room()
    worker.claimed(0, written=True)
    assert not worker.claim_writes_room()


def test_sqlite_workers_do_not_write_their_room_after_claims():
    worker = registry("w1", room=0)
    worker.register()
    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL workers do")
    worker.claimed(3, written=False)
    assert Worker.objects.get(pk="w1").room == 0
    assert not worker.claim_writes_room()
