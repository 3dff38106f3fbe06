"""The hot table's indexes are rebuilt once they have grown far past its
rows (PostgreSQL): after a snapshot held for minutes, vacuum gives the
heap back, never an index's pages."""

from __future__ import annotations

import logging

import pytest
from django.db import DatabaseError, connection

from django_jobs import queue
from django_jobs.backend import jobs_backend
from django_jobs.models import Job
from django_jobs.queue import upkeep
from django_jobs.worker.options import WorkerOptions
from django_jobs.worker.upkeep import Reindexer

HOT = Job._meta.db_table


def options() -> WorkerOptions:
    return WorkerOptions(backend=jobs_backend("default"))


def run(sql: str, params=()) -> list:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def bloat() -> None:
    """Index entries of 20,000 jobs gone: the heap shrinks back, the
    indexes keep their pages."""
    run(
        f"""INSERT INTO {HOT} (backend, queue, task_path, args, kwargs, state,
            priority, run_at, ttr, attempts, max_attempts, on_failure,
            enqueued_at, reserved_by, claim_token, worker_ids, errors)
        SELECT 'default', 'q' || (n %% 7), 'tests.tasks.noop', '[]', '{{}}',
            'ready', 0, now(), 300, 0, 3, 'bury', now(), '', '', '[]', '[]'
        FROM generate_series(1, 20000) AS n"""
    )
    run(f"DELETE FROM ONLY {HOT}")
    run(f"VACUUM {HOT}")


@pytest.fixture
def small_floor(monkeypatch):
    monkeypatch.setattr(upkeep, "BLOAT_FLOOR", 0)


postgres = pytest.mark.postgres


@postgres
def test_bloated_indexes_are_rebuilt_in_a_thread(transactional_db, small_floor):
    bloat()
    _, before = upkeep.sizes()
    assert upkeep.bloated()
    reindexer = Reindexer(options())
    assert reindexer.run_once() is True
    reindexer.rebuilds.join(timeout=60)
    assert not reindexer.rebuilds.busy()
    _, after = upkeep.sizes()
    assert after < before / 4, (before, after)
    assert reindexer.rebuilt_to == after
    assert reindexer.run_once() is False  # not again until they have doubled
    job = queue.enqueue(task_path="tests.tasks.noop")  # the indexes work
    assert [j.pk for j in queue.claim(worker_id="w", limited=())] == [job.pk]


@postgres
def test_indexes_in_proportion_to_the_table_are_left_alone(transactional_db):
    queue.enqueue(task_path="tests.tasks.noop")
    assert not upkeep.bloated()  # under the floor
    assert Reindexer(options()).run_once() is False


@postgres
def test_a_rebuild_left_half_way_is_cleaned_up(transactional_db, small_floor):
    run(f"CREATE INDEX django_jobs_job_queue_ccnew ON {HOT} (queue)")
    run(
        "UPDATE pg_index SET indisvalid = false"
        " WHERE indexrelid = 'django_jobs_job_queue_ccnew'::regclass"
    )
    upkeep.reindex()
    assert run("SELECT to_regclass('django_jobs_job_queue_ccnew')") == [(None,)]
    invalid = run(
        "SELECT count(*) FROM pg_index WHERE indrelid = %s::regclass"
        " AND NOT indisvalid",
        [HOT],
    )
    assert invalid == [(0,)]


@postgres
@pytest.mark.parametrize(
    ("code", "said", "still_on"),
    [
        # Not the table's owner: said once, not tried again.
        ("42501", "must be owner of table django_jobs_job", False),
        # Gave up waiting (lock_timeout): tried again at the next look.
        ("55P03", "canceling statement due to lock timeout", True),
    ],
)
def test_a_rebuild_that_fails(
    transactional_db, small_floor, monkeypatch, caplog, code, said, still_on
):
    bloat()

    class Failed(DatabaseError):
        sqlstate = code  # as psycopg's errors say it

    def failing(using=None):
        raise Failed(said)

    monkeypatch.setattr(upkeep, "reindex", failing)
    reindexer = Reindexer(options())
    with caplog.at_level(logging.INFO, logger="django_jobs.worker"):
        assert reindexer.run_once() is True
        reindexer.rebuilds.join(timeout=30)
    assert said in caplog.text
    assert ("REINDEX TABLE CONCURRENTLY" in caplog.text) is not still_on
    assert (reindexer.due_at() is not None) is still_on


@pytest.mark.django_db
def test_on_sqlite_nothing_is_rebuilt(settings):
    if connection.vendor == "postgresql":
        pytest.skip("SQLite only")
    assert Reindexer(options()).due_at() is None


@postgres
def test_a_rebuild_gives_up_waiting_for_an_old_snapshot_and_is_cleaned_up_after(
    transactional_db, monkeypatch
):
    """It must see the transactions older than it end; a session idle in one
    would keep it waiting, and it would keep vacuum off the table."""
    import psycopg

    monkeypatch.setattr(upkeep, "WAIT", 0.5)
    queue.enqueue(task_path="tests.tasks.noop")
    params = connection.get_connection_params()
    with psycopg.connect(**params) as idle:
        idle.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        idle.execute(f"SELECT count(*) FROM {HOT}")
        with pytest.raises(DatabaseError, match="lock timeout"):
            upkeep.reindex()
        idle.rollback()
    upkeep.reindex()  # drops what the first one left, then rebuilds
    invalid = run(
        "SELECT count(*) FROM pg_index WHERE indrelid = %s::regclass"
        " AND NOT indisvalid",
        [HOT],
    )
    assert invalid == [(0,)]
