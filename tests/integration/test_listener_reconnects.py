"""The LISTEN connection, ended by the server (a restart, a failover,
``pg_terminate_backend``), is opened again at once, as the supervisor's own
connection is; only if that fails does the worker poll, trying again after
half a second, doubling up to ``RECONNECT_DELAY``."""

from __future__ import annotations

import logging
import time

import psycopg
import pytest
from django.db import connection

from django_jobs import queue
from django_jobs.worker.listener import RECONNECT_DELAY, RECONNECT_FIRST, Listener

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


@pytest.fixture
def listener():
    listener = Listener("default", queue.channel("w"))
    yield listener
    listener.close()


def terminate(pid: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])


def lose(listener: Listener) -> None:
    """End the listener's session; wait (bounded) until it notices."""
    terminate(listener.connection.info.backend_pid)
    until = time.monotonic() + 10
    while time.monotonic() < until:
        if listener.queues() is None:  # the link broke
            return
        time.sleep(0.01)
    raise AssertionError("the listener did not notice its session ended")


def test_a_listen_connection_the_server_ended_is_opened_again_at_once(listener, caplog):
    caplog.set_level(logging.DEBUG, logger="django_jobs")
    assert listener.connect()
    first = listener.connection.info.backend_pid
    lose(listener)
    assert listener.connect()  # no wait
    assert listener.connection.info.backend_pid != first
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in said] == ["INFO"], said  # no warning
    assert "\n" not in said[0][1]


def test_when_connecting_again_fails_the_tries_back_off(listener, monkeypatch, caplog):
    assert listener.connect()
    lose(listener)

    def refused(*args, **kwargs):
        raise psycopg.OperationalError("connection refused\nIs the server running?")

    monkeypatch.setattr(psycopg, "connect", refused)
    waits = []
    for _ in range(6):
        listener.retry_at = 0.0  # as if the wait were over
        before = time.monotonic()
        assert not listener.connect()
        waits.append(round(listener.retry_at - before, 1))
    expected = [min(RECONNECT_DELAY, RECONNECT_FIRST * 2**n) for n in range(6)]
    assert waits == expected
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1  # one line, then silence until it is back
    assert warnings[0].getMessage() == (
        "cannot LISTEN for new jobs (connection refused); polling meanwhile"
    )
    monkeypatch.undo()
    listener.retry_at = 0.0
    assert listener.connect()
    assert caplog.records[-1].getMessage() == "listening for new jobs again"
    assert listener.failures == 0
