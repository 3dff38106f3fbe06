"""DatabaseHealth: when the supervisor tries its database again, and what it logs.

No database: a connection the server closed is an open connection object that
Django holds (here a stand-in); one that never opened is none at all.
"""

from __future__ import annotations

import logging

import pytest
from django.db import OperationalError, connections

from django_jobs.worker import outage as outage_module
from django_jobs.worker.outage import RETRY_FIRST, RETRY_MAX, DatabaseHealth

DROPPED = OperationalError(
    "consuming input failed: server closed the connection unexpectedly\n"
    "\tThis probably means the server terminated abnormally\n"
)
REFUSED = OperationalError(
    'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
    "Connection refused\n\tIs the server running on that host?\n"
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class BrokenConnection:
    """What Django holds after the server closed the connection."""

    def close(self) -> None:
        pass


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(outage_module.time, "monotonic", clock)
    return clock


@pytest.fixture
def dropped():
    """Make the next failure one on a connection the server closed."""
    wrapper = connections["default"]

    def drop() -> None:
        wrapper.connection = BrokenConnection()

    yield drop
    wrapper.connection = None


def lines(caplog, level=logging.INFO) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= level]


def test_a_dropped_connection_is_tried_again_at_once_and_is_no_outage(
    clock, dropped, caplog
):
    caplog.set_level(logging.DEBUG, logger="django_jobs")
    health = DatabaseHealth("default")
    dropped()
    health.failed(DROPPED, "claim jobs")
    assert health.away
    assert health.due(clock.now)
    assert connections["default"].connection is None  # a new one next time
    assert lines(caplog) == []
    health.ok()
    assert not health.away
    [line] = lines(caplog)
    assert line == (
        "database 'default' closed the worker's connection (consuming input "
        "failed: server closed the connection unexpectedly); it reconnected at once"
    )


def test_drops_in_a_row_make_one_line_until_the_next_reminder(clock, dropped, caplog):
    caplog.set_level(logging.INFO, logger="django_jobs")
    health = DatabaseHealth("default")
    for _ in range(20):  # twice a second for 10 s
        dropped()
        health.failed(DROPPED, "claim jobs")
        health.ok()
        clock.now += 0.5
    assert len(lines(caplog)) == 1
    clock.now += outage_module.REMIND_EVERY
    dropped()
    health.failed(DROPPED, "claim jobs")
    health.ok()
    assert lines(caplog)[-1].endswith(
        "reconnected at once (19 more since it last said so)"
    )


def test_when_trying_again_fails_the_database_is_away_and_tries_back_off(
    clock, dropped, caplog
):
    health = DatabaseHealth("default")
    dropped()
    health.failed(DROPPED, "claim jobs")
    waits = []
    for _ in range(7):  # the new connection is refused
        health.failed(REFUSED, "claim jobs")
        waits.append(round(health.retry_at - clock.now, 3))
        assert not health.due(clock.now)
        clock.now = health.retry_at
    assert waits == [RETRY_FIRST, 0.2, 0.4, 0.8, RETRY_MAX, RETRY_MAX, RETRY_MAX]
    unavailable, = lines(caplog, logging.WARNING)  # fmt: skip
    assert unavailable.startswith(
        "database 'default' unavailable (connection failed: connection to server "
        'at "127.0.0.1", port 5432 failed: Connection refused); '
    )
    assert "\n" not in unavailable
    clock.now += 2.5
    health.ok()
    assert lines(caplog)[-1].startswith("database 'default' back after ")
    assert health.due(clock.now)
    assert not health.away


def test_a_database_that_cannot_be_reached_at_all_is_away_at_the_first_failure(
    clock, caplog
):
    health = DatabaseHealth("default")
    health.failed(REFUSED, "claim jobs")  # no connection was open: none dropped
    assert not health.due(clock.now)
    assert health.retry_at == clock.now + RETRY_FIRST
    assert len(lines(caplog, logging.WARNING)) == 1
