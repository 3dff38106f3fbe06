"""The autoscaler's decisions (worker/scaling.py) and ``--concurrency MIN:MAX``,
without a database: the budget, the count of waiting jobs and the clock are
stand-ins."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from django.core.management.base import CommandError

from django_jobs.worker import scaling
from django_jobs.worker.options import concurrency_range
from tests.unit.fakes import Fake


@pytest.mark.parametrize(
    ("value", "expected"), [("4", (4, 4)), ("2:16", (2, 16)), ("3:3", (3, 3))]
)
def test_concurrency_is_n_or_min_max(value, expected):
    assert concurrency_range(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("16:2", "--concurrency MIN:MAX must have MIN at most MAX, got '16:2'."),
        ("0:4", "--concurrency must be N or MIN:MAX, whole numbers of at least 1"),
        ("a:b", "--concurrency must be N or MIN:MAX, whole numbers of at least 1"),
        ("4:", "--concurrency must be N or MIN:MAX, whole numbers of at least 1"),
        ("1:2:3", "--concurrency must be N or MIN:MAX, whole numbers of at least 1"),
        ("0", "--concurrency must be a whole number of at least 1, got '0'."),
    ],
)
def test_bad_concurrency_is_one_line(value, message):
    with pytest.raises(CommandError) as raised:
        concurrency_range(value)
    assert str(raised.value).startswith(message)
    assert f"got {value!r}." in str(raised.value)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Pool:
    """Children: ``busy`` of them hold a job; spares are not modelled."""

    def __init__(self) -> None:
        self.busy: list[object] = []
        self.by_pid: dict[int, object] = {}
        self.pending: dict[int, object] = {}

    def set_busy(self, count: int) -> None:
        self.busy = [object()] * count

    def active_count(self) -> int:
        return 0

    def __iter__(self):
        return iter(())


@pytest.fixture
def scaler(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(scaling.time, "monotonic", clock)
    monkeypatch.setattr(scaling, "available_memory", lambda: 8 * 2**30)
    options = SimpleNamespace(
        db="default",
        concurrency=2,
        max_concurrency=16,
        scales=True,
        queues=(),
        backend=SimpleNamespace(alias="default"),
        config=SimpleNamespace(
            SCALE_DOWN_AFTER=30.0,
            SCALE_MIN_FREE_MEMORY=2**28,
            CONNECTION_BUDGET=None,
            WORKER_TIMEOUT=60.0,
            WORKER_DATABASE=None,
        ),
    )
    made = scaling.Scaler(
        options, "w1", Pool(), shutdown=SimpleNamespace(draining=False)
    )
    made.budget = Fake(grow=lambda size, wanted: (wanted, ""))
    made.clock = clock
    made.backlog = 100
    monkeypatch.setattr(made, "waiting", lambda: made.backlog)
    return made


def busy_with_backlog(scaler, busy: int) -> None:
    scaler.children.set_busy(busy)
    scaler.claimed(asked=1, got=1)


def test_it_grows_by_half_its_size_while_every_slot_is_busy_and_jobs_wait(
    scaler, caplog
):
    caplog.set_level(logging.INFO, "django_jobs.worker")
    sizes = []
    for _ in range(8):
        busy_with_backlog(scaler, scaler.size)
        scaler.run_once()
        sizes.append(scaler.size)
    assert sizes == [3, 4, 6, 9, 13, 16, 16, 16]
    assert "growing to 3 children: 100 job(s) waiting over 1 s, all 2 busy" in (
        caplog.text
    )


def test_it_does_not_grow_for_fewer_waiting_jobs_than_a_step(scaler):
    scaler.size = 8
    scaler.backlog = 2
    busy_with_backlog(scaler, 8)
    scaler.run_once()
    assert scaler.size == 10


def test_it_does_not_grow_with_an_idle_slot_or_when_the_last_claim_was_short(scaler):
    busy_with_backlog(scaler, 1)  # a slot free
    scaler.run_once()
    scaler.children.set_busy(2)
    scaler.claimed(asked=2, got=1)  # the queue ran dry
    scaler.run_once()
    assert scaler.size == 2


def test_idle_slots_stop_after_scale_down_after(scaler, caplog):
    caplog.set_level(logging.INFO, "django_jobs.worker")
    scaler.size = 8
    scaler.children.set_busy(8)
    scaler.observe()
    scaler.clock.now += 10
    scaler.children.set_busy(3)
    scaler.observe()
    scaler.children.set_busy(0)
    scaler.clock.now += 19
    scaler.run_once()
    assert scaler.size == 8  # not yet: slots 4 to 8 were used 29 s ago
    scaler.clock.now += 2
    scaler.run_once()
    assert scaler.size == 3  # slots 1 to 3 were used 21 s ago
    assert "shrinking to 3 children: 5 idle for 31 s" in caplog.text


def test_back_to_min_once_every_slot_is_idle(scaler):
    scaler.size = 16
    scaler.children.set_busy(16)
    scaler.observe()
    scaler.children.set_busy(0)
    scaler.clock.now += 31
    scaler.run_once()
    assert scaler.size == 2
    assert scaler.budget.args("publish")[-1][0] == 2


def test_short_of_memory_it_says_so_once_and_does_not_grow(scaler, monkeypatch, caplog):
    caplog.set_level(logging.INFO, "django_jobs.worker")
    monkeypatch.setattr(scaling, "available_memory", lambda: 100 * 2**20)
    for _ in range(3):
        busy_with_backlog(scaler, 2)
        scaler.run_once()
    assert scaler.size == 2
    assert caplog.text.count("not growing: 100 MiB of memory available") == 1


def test_the_budget_grants_part_of_a_step_and_says_why(scaler, caplog):
    caplog.set_level(logging.INFO, "django_jobs.worker")
    reason = "connection budget 40 reached (36 used by 3 other worker(s))"
    scaler.size = 8
    scaler.budget = Fake(grow=lambda size, wanted: (9, reason))
    busy_with_backlog(scaler, 8)
    scaler.run_once()
    assert scaler.size == 9
    assert f"not growing: {reason}" in caplog.text


def test_it_does_not_grow_while_stopping(scaler):
    scaler.shutdown.draining = True
    busy_with_backlog(scaler, 2)
    scaler.run_once()
    assert scaler.size == 2
