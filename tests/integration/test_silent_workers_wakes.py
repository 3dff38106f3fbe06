"""Wake-ups go to workers alive by their heartbeat (PostgreSQL).

A SIGKILLed worker keeps its row until the rescuer presumes it dead
(WORKER_TIMEOUT); meanwhile the heartbeats of the live workers set its room
to zero, and ``django_jobs_wake`` wakes only workers with room. The test
settings heartbeat every 0.5 s: a worker silent for 1 s is woken no more;
one silent for 3 s is presumed dead.
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
from django_jobs.models import Worker
from django_jobs.worker.fleet import WAKE_BEATS, Registry
from django_jobs.worker.options import WorkerOptions
from tests import tasks

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def registry(name: str, room: list[int]) -> Registry:
    options = WorkerOptions(backend=jobs_backend("default"))
    return Registry(options, name, lambda: room[0])


def falls_silent(name: str) -> None:
    """As if its last heartbeat were ``WAKE_BEATS`` and a half ago: killed a
    moment ago, not yet presumed dead."""
    interval = jobs_backend("default").config.HEARTBEAT_INTERVAL
    last = timezone.now() - timedelta(seconds=(WAKE_BEATS + 0.5) * interval)
    Worker.objects.filter(pk=name).update(last_heartbeat=last)


class Ears:
    """A connection that LISTENs on workers' channels, and what it heard."""

    def __init__(self) -> None:
        params = connection.get_connection_params()
        self.connection = psycopg.connect(**params, autocommit=True)

    def listen(self, *workers: str) -> None:
        for worker in workers:
            self.connection.execute(f"LISTEN {queue.channel(worker)}")

    def heard(self, expected: int = 0, wait: float = 1.0) -> list[str]:
        """The workers notified: until ``expected`` of them were, or until
        ``wait`` seconds pass without a notification."""
        channels = {queue.channel(name): name for name in ("live", "silent")}
        heard: list[str] = []
        socket = self.connection.pgconn.socket
        while not expected or len(heard) < expected:
            if not select.select([socket], [], [], wait)[0]:
                break
            self.connection.pgconn.consume_input()
            while (notify := self.connection.pgconn.notifies()) is not None:
                heard.append(channels[notify.relname.decode()])
        return heard


@pytest.fixture
def ears():
    listening = Ears()
    yield listening
    listening.connection.close()


def test_a_worker_silent_for_two_heartbeats_gets_no_wake_ups(ears):
    live, silent = registry("live", [1]), registry("silent", [4])
    live.register()
    silent.register()
    falls_silent("silent")
    live.run_once()  # the live worker's heartbeat
    ears.listen("live", "silent")

    for number in range(10):  # one statement each: each wakes one worker
        tasks.add.enqueue(number, 1)

    assert ears.heard(expected=10) == ["live"] * 10


def test_a_silent_worker_that_heartbeats_again_is_woken_again(ears):
    live, silent = registry("live", [1]), registry("silent", [4])
    live.register()
    silent.register()
    falls_silent("silent")
    live.run_once()
    silent.run_once()  # it was only late
    live.run_once()  # and the live worker's next heartbeat leaves it be
    assert Worker.objects.get(pk="silent").room == 4
    ears.listen("silent")

    tasks.add.enqueue_many([((1, 2), {})] * 5)  # more than the live one's room

    assert ears.heard(expected=1) == ["silent"]


def test_a_job_no_live_worker_has_room_for_is_found_by_the_leaders_look(ears):
    room = [0]  # the live worker is full
    live, silent = registry("live", room), registry("silent", [4])
    live.register()
    silent.register()
    falls_silent("silent")
    live.run_once()
    ears.listen("live", "silent")

    tasks.add.enqueue(1, 2)
    assert ears.heard() == []  # nobody could take it

    room[0] = 1  # a job of the live worker ended; its heartbeat says so
    live.run_once()
    assert queue.wake_due() == 1  # the leader's look, every --poll-interval
    assert ears.heard(expected=1) == ["live"]


def test_a_row_held_by_another_statement_is_skipped_not_waited_for():
    live, silent = registry("live", [1]), registry("silent", [4])
    live.register()
    silent.register()
    falls_silent("silent")
    params = connection.get_connection_params()
    with connection.cursor() as cursor:  # waiting for the lock would fail
        cursor.execute("SET lock_timeout = '2s'")
    try:
        with psycopg.connect(**params) as other:  # holds the silent row
            other.execute(
                "SELECT 1 FROM django_jobs_worker WHERE id = 'silent' FOR UPDATE"
            )
            live.run_once()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    assert Worker.objects.get(pk="silent").room == 4  # its next look does it
    live.run_once()
    assert Worker.objects.get(pk="silent").room == 0
