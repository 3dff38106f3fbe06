"""The fleet's connection budget (worker/budget.py), from the worker rows."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from django_jobs.backend import JobsBackend
from django_jobs.models import Worker
from django_jobs.worker.budget import Budget, connections_at, max_connections
from django_jobs.worker.fleet import Registry
from django_jobs.worker.options import WorkerOptions
from tests.settings import TASKS

pytestmark = pytest.mark.django_db(transaction=True)


def options(
    budget: int | None, least: int = 1, most: int = 8, **more: str
) -> WorkerOptions:
    params = copy.deepcopy(TASKS["default"])
    params["OPTIONS"].update(CONNECTION_BUDGET=budget, **more)
    backend = JobsBackend("default", params)
    return WorkerOptions(backend=backend, concurrency=least, max_concurrency=most)


def live_worker(name: str, connections: int | None, concurrency: int = 1, **row):
    return Worker.objects.create(
        id=name,
        hostname="h",
        pid=1,
        concurrency=concurrency,
        connections=connections,
        **row,
    )


def test_a_worker_grows_only_into_what_the_others_leave():
    live_worker("other", connections=10)
    live_worker("me", connections=connections_at("default", 1))
    budget = Budget(options(20), "me")
    spare_slots = (20 - 10 - connections_at("default", 0)) // 2
    granted, short = budget.grow(1, 16)
    assert granted == spare_slots
    assert "connection budget 20 reached (10 used by 1 other worker(s))" in short
    row = Worker.objects.get(pk="me")
    assert (row.concurrency, row.connections) == (
        granted,
        connections_at("default", granted),
    )
    assert Worker.objects.get(pk="other").connections + row.connections <= 20
    assert budget.grow(granted, granted + 1) == (granted, short)  # full


def test_silent_workers_do_not_count_and_old_rows_count_as_fixed():
    silent = timezone.now() - timedelta(minutes=5)
    live_worker("dead", connections=50, last_heartbeat=silent)
    live_worker("old", connections=None, concurrency=3)
    fleet = Budget(options(100), "me").others()
    assert (fleet.workers, fleet.connections) == (1, connections_at("default", 3))


def test_a_worker_whose_minimum_does_not_fit_is_refused_at_registration():
    live_worker("other", connections=10)
    registry = Registry(options(12, least=2), "me", room=lambda: 2)
    with pytest.raises(CommandError, match="not starting: connection budget 12"):
        registry.register()
    assert not Worker.objects.filter(pk="me").exists()


def test_a_worker_that_fits_is_registered_with_its_sizes():
    registry = Registry(options(40, least=2, most=2), "me", room=lambda: 2)
    registry.register()
    row = Worker.objects.get(pk="me")
    assert (row.concurrency, row.min_concurrency, row.max_concurrency) == (2, 2, 2)
    assert row.connections == connections_at("default", 2)


def test_a_budget_below_the_worker_s_own_minimum_is_refused():
    with pytest.raises(CommandError, match="below this worker's minimum of"):
        Budget(options(3, least=2), "me").check_server()


def test_a_budget_above_max_connections_is_refused():
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has no max_connections")
    allowed = max_connections("default")
    assert allowed > 0
    Budget(options(allowed), "me").check_server()
    with pytest.raises(CommandError, match="above the server's max_connections"):
        Budget(options(allowed + 1), "me").check_server()
    # Behind a pooler the budget counts the pooler's clients, not the server's.
    Budget(options(allowed + 1, WORKER_DATABASE="default"), "me").check_server()


def test_max_connections_is_read_where_the_server_has_one():
    allowed = max_connections("default")
    if connection.vendor == "sqlite":
        assert allowed is None
    else:
        assert allowed > 0
