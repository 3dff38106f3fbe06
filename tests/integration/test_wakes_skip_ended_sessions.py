"""A worker whose LISTEN session has ended takes no wake-ups (PostgreSQL).

Each worker records its listener's session in its row (``listener_pid``,
``listener_started_at``); ``django_jobs_wake`` (migration 0011) passes over a
worker whose session is gone. Here the sessions are real connections, opened
and closed by the test; the rows are fresh (heartbeats play no part).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection

from django_jobs import queue
from django_jobs.models import Worker
from django_jobs.worker.listener import Listener
from tests import tasks
from tests.listener_sessions import Ears, Session, wait_ended

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


@pytest.fixture
def sessions():
    """Sessions for the test, closed at its end."""
    opened: list[Session] = []

    def open_one() -> Session:
        opened.append(Session())
        return opened[-1]

    yield open_one
    for session in opened:
        session.connection.close()


@pytest.fixture
def ears():
    """Ears on workers' channels for the test, closed at its end."""
    opened: list[Ears] = []

    def listen(*workers: str) -> Ears:
        opened.append(Ears(*workers))
        return opened[-1]

    yield listen
    for listening in opened:
        listening.close()


def worker_row(name: str, room: int) -> None:
    Worker.objects.create(id=name, hostname="h", pid=1, concurrency=4, room=room)


def test_a_worker_whose_listener_session_ended_gets_no_wake_ups(sessions, ears):
    worker_row("live", 1)
    worker_row("gone", 4)  # more room: it would be picked first most often
    sessions().recorded_by("live")
    dead = sessions()
    dead.recorded_by("gone")
    dead.end()  # the worker died: the kernel closed its socket
    heard = ears("live", "gone")

    for number in range(10):  # one statement each: each wakes one worker
        tasks.add.enqueue(number, 1)

    assert heard.heard(expected=10) == ["live"] * 10
    assert heard.heard(wait=0.3) == []


def test_a_session_that_ended_is_not_counted_among_those_woken(sessions):
    worker_row("live", 2)
    worker_row("gone", 2)
    sessions().recorded_by("live")
    dead = sessions()
    dead.recorded_by("gone")
    dead.end()

    with connection.cursor() as cursor:
        cursor.execute("SELECT django_jobs_wake('default', 'default', 3)")
        assert cursor.fetchone()[0] == 1  # the live one; the rest waits


def test_a_pid_the_server_gave_to_another_session_is_not_the_workers(sessions, ears):
    worker_row("live", 1)
    worker_row("reused", 4)
    sessions().recorded_by("live")
    other = sessions()  # alive, with the pid the row names, but started later
    other.recorded_by("reused", started_at=other.started_at - timedelta(minutes=1))
    heard = ears("live", "reused")

    for number in range(10):
        tasks.add.enqueue(number, 1)

    assert heard.heard(expected=10) == ["live"] * 10


@pytest.fixture
def plain_role():
    """A role that is neither superuser nor pg_read_all_stats: other roles'
    sessions show it their pid but not their backend_start."""
    name = f"django_jobs_probe_{uuid.uuid4().hex[:8]}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {name}")
        cursor.execute(f"GRANT SELECT ON django_jobs_worker TO {name}")
    yield name
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")
        cursor.execute(f"REVOKE ALL ON django_jobs_worker FROM {name}")
        cursor.execute(f"DROP ROLE {name}")


def test_a_role_that_cannot_see_when_sessions_started_goes_by_the_pid(
    sessions, plain_role, ears
):
    worker_row("gone", 1)
    worker_row("other", 1)
    dead = sessions()
    dead.recorded_by("gone")
    dead.end()
    other = sessions()  # the start in the row does not match, unseen
    other.recorded_by("other", started_at=other.started_at - timedelta(minutes=1))
    heard = ears("gone", "other")

    with connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {plain_role}")
        cursor.execute(
            "SELECT backend_start FROM pg_stat_get_activity(%s)", [other.pid]
        )
        assert cursor.fetchone() == (None,)  # the role cannot see it
        cursor.execute("SELECT django_jobs_wake('default', 'default', 2)")
        woken = cursor.fetchone()[0]
        cursor.execute("RESET ROLE")

    assert (woken, heard.heard(expected=1)) == (1, ["other"])


def test_the_listener_records_its_session_in_its_workers_row():
    worker_row("w", 1)
    worker_row("neighbour", 1)
    listener = Listener("default", queue.channel("w"))
    try:
        assert listener.connect()
        pid, started_at = listener.connection.execute(
            "SELECT pid, backend_start FROM pg_stat_get_activity(pg_backend_pid())"
        ).fetchone()
        row = Worker.objects.get(pk="w")
        assert (row.listener_pid, row.listener_started_at) == (pid, started_at)
        neighbour = Worker.objects.get(pk="neighbour")
        assert (neighbour.listener_pid, neighbour.listener_started_at) == (None, None)
    finally:
        listener.close()


def session_of(name: str) -> tuple:
    row = Worker.objects.get(pk=name)
    return row.listener_pid, row.listener_started_at


def test_a_worker_whose_listener_broke_is_woken_again_once_it_listens(ears):
    worker_row("w", 1)
    listener = Listener("default", queue.channel("w"))
    heard = ears("w")
    try:
        assert listener.connect()
        first = session_of("w")
        listener.close()  # as when its connection breaks
        wait_ended(first[0])
        tasks.add.enqueue(1, 1)
        assert heard.heard() == []  # it could not have heard it: not sent

        assert listener.connect()  # its next try
        assert session_of("w") != first
        tasks.add.enqueue(2, 1)
        assert heard.heard(expected=1) == ["w"]
    finally:
        listener.close()
