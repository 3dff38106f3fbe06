"""Done jobs out of the hot table: the history's day tables (PostgreSQL).

A move takes done jobs from ``django_jobs_job`` into the inheritance child
of their day of finish; every reader keeps reading the parent table and so
sees them wherever they are. On SQLite nothing moves.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time as time_module
from datetime import UTC, datetime, time, timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import IntegrityError, connection, connections, transaction
from django.test import Client, override_settings
from django.utils import timezone

from django_jobs import queue
from django_jobs.backend import jobs_backend
from django_jobs.batches import batch
from django_jobs.compat import TaskResultStatus, default_task_backend, task_backends
from django_jobs.models import Batch, Dependency, Job, Workflow
from django_jobs.queue import guard, history
from django_jobs.queue import sql as queue_sql
from django_jobs.testing import run_jobs
from django_jobs.worker.duties import History, Pruner, history_retention
from django_jobs.worker.options import WorkerOptions
from django_jobs.workflows import after
from tests import tasks
from tests import workflow_tasks as w
from tests.workflow_tasks import pipeline

#: The tests that need PostgreSQL (a module-level mark would skip the one
#: test that shows nothing moves on SQLite).
postgres = pytest.mark.postgres

HOT = Job._meta.db_table
CHANGELIST = "/admin/django_jobs/job/"


def value_of(sql: str, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def hot_count() -> int:
    """Jobs in the hot table itself (not in its day tables)."""
    return value_of(f'SELECT count(*) FROM ONLY "{HOT}"')


def count_in(table: str) -> int:
    return value_of(f'SELECT count(*) FROM "{table}"')


def home(job_id: int) -> str:
    """The table that holds the job's row."""
    return value_of(
        f'SELECT tableoid::regclass::text FROM "{HOT}" WHERE id = %s', [job_id]
    )


def table_of(moment: datetime) -> str:
    return history.table_name(history.day_of(moment))


def drop_day_tables() -> None:
    with connection.cursor() as cursor:
        for name in history.tables().values():
            cursor.execute(f'DROP TABLE "{name}"')


def options() -> WorkerOptions:
    return WorkerOptions(backend=jobs_backend("default"))


def soon() -> datetime:
    """A ``before`` that every job finished so far is older than."""
    return timezone.now() + timedelta(seconds=1)


@pytest.fixture
def history_db(db):
    """No day table at the start: the workers of other tests make them, and
    a test's commits outlive it. Dropped inside this test's transaction, so
    that they are back after it."""
    drop_day_tables()


@pytest.fixture
def finished(claimed, history_db):
    """A done job (finished ``at`` a given time, if given), in the hot table."""

    def finish(*, at: datetime | None = None, value=None, **fields) -> Job:
        job = claimed(**fields)
        queue.complete(job.pk, token=job.claim_token, return_value=value)
        if at is not None:
            Job.objects.filter(pk=job.pk).update(finished_at=at)
        return Job.objects.get(pk=job.pk)

    return finish


# What moves, and where to


@postgres
def test_a_moved_job_leaves_the_hot_table_and_reads_the_same(history_db):
    result = tasks.add.enqueue(20, 22)
    (job,) = queue.claim(worker_id="w1")
    queue.complete(job.pk, token=job.claim_token, return_value=42)
    before = Job.objects.get(pk=job.pk)
    assert (hot_count(), home(job.pk)) == (1, HOT)
    assert history.move(before=soon()) == 1
    assert hot_count() == 0
    assert home(job.pk) == table_of(before.finished_at)
    moved = Job.objects.get(pk=job.pk)
    assert (moved.state, moved.return_value) == ("done", 42)
    assert moved.finished_at == before.finished_at
    assert (moved.args, moved.attempts) == ([20, 22], 1)
    for read in (default_task_backend, task_backends["default"]):
        got = read.get_result(result.id)
        assert got.status == TaskResultStatus.SUCCESSFUL
        assert got.return_value == 42
        assert got.finished_at == before.finished_at
    assert tasks.add.get_result(result.id).return_value == 42
    assert history.move(before=soon()) == 0  # nothing left to move


def backend_with(**options_) -> dict:
    """``TASKS`` with the one backend "default", given these OPTIONS."""
    return {
        "default": {
            "BACKEND": "django_jobs.backend.JobsBackend",
            "QUEUES": [],
            "OPTIONS": options_,
        }
    }


@postgres
def test_only_done_jobs_older_than_the_delay_move(make_job, claimed, finished):
    with override_settings(TASKS=backend_with(HISTORY_DELAY=10)):
        duty = History(options())
    assert (duty.enabled, duty.delay) == (True, 10)
    now = timezone.now()
    old = finished(at=now - timedelta(minutes=1))
    recent = finished()  # finished now: less than HISTORY_DELAY ago
    ready = make_job()
    reserved = claimed()
    buried = claimed()
    queue.bury(buried.pk, token=buried.claim_token)
    Job.objects.filter(pk=buried.pk).update(finished_at=now - timedelta(days=1))
    delayed = make_job(run_at=now + timedelta(hours=1))
    assert history.move(before=timezone.now() - timedelta(seconds=duty.delay)) == 1
    assert home(old.pk) == table_of(old.finished_at)
    assert home(recent.pk) == HOT
    assert duty.run_once() == 0  # the duty keeps the delay too
    assert home(recent.pk) == HOT
    # However late the cut, only done jobs ever move.
    assert history.move(before=now + timedelta(days=1)) == 1
    assert home(recent.pk) == table_of(recent.finished_at)
    for live in (ready, reserved, buried, delayed):
        assert home(live.pk) == HOT
    assert hot_count() == 4
    states = dict(Job.objects.values_list("pk", "state"))
    assert states[buried.pk] == "buried"
    assert states[reserved.pk] == "reserved"


@postgres
def test_the_history_duty_moves_what_finished_before_its_delay(finished):
    with override_settings(TASKS=backend_with(HISTORY_DELAY=10)):
        duty = History(options())
    old = finished(at=timezone.now() - timedelta(seconds=30))
    recent = finished()
    assert duty.run_once() == 1
    assert (home(old.pk), home(recent.pk)) == (table_of(old.finished_at), HOT)


@postgres
def test_jobs_done_on_different_days_go_to_their_days_tables(finished):
    now = timezone.now()
    earlier = finished(at=now - timedelta(days=3))
    today = finished()
    assert history.move(before=soon()) == 2
    days = history.tables()
    assert days[history.day_of(earlier.finished_at)] == table_of(earlier.finished_at)
    assert days[history.day_of(today.finished_at)] == table_of(today.finished_at)
    assert table_of(earlier.finished_at) != table_of(today.finished_at)
    assert count_in(table_of(earlier.finished_at)) == 1
    assert count_in(table_of(today.finished_at)) == 1
    assert home(earlier.pk) == table_of(earlier.finished_at)
    assert home(today.pk) == table_of(today.finished_at)
    assert hot_count() == 0
    assert Job.objects.filter(state="done").count() == 2


@postgres
def test_a_day_table_holds_done_jobs_of_its_day_only(finished):
    job = finished()
    history.move(before=soon())
    assert home(job.pk) == table_of(job.finished_at)
    moved = Job.objects.filter(pk=job.pk)
    for change in ({"finished_at": job.finished_at - timedelta(days=2)},
                   {"state": "ready"}):  # fmt: skip
        with (
            pytest.raises(IntegrityError, match="violates check constraint"),
            transaction.atomic(),
        ):
            moved.update(**change)


# Missing day tables


@postgres
def test_a_missing_day_table_is_made_and_logged(finished, caplog):
    caplog.set_level(logging.INFO, logger="django_jobs.queue")
    first = finished()
    name = table_of(first.finished_at)
    assert history.tables() == {}
    assert history.move(before=soon()) == 1
    assert name in history.tables().values()
    (record,) = [r for r in caplog.records if "made the missing table" in r.message]
    assert record.name == "django_jobs.queue"
    assert record.levelno == logging.WARNING
    assert name in record.message
    caplog.clear()
    history.move(before=soon())  # the table is there now: nothing is said
    assert not [r for r in caplog.records if "missing table" in r.message]


@postgres
def test_a_day_table_dropped_by_hand_is_made_again_by_the_next_move(finished, caplog):
    caplog.set_level(logging.WARNING, logger="django_jobs.queue")
    history.prepare(timezone.now())  # as the pruner does: no table is missing
    dropped = finished()
    assert history.move(before=soon()) == 1
    assert not [r for r in caplog.records if "missing table" in r.message]
    name = table_of(dropped.finished_at)
    waiting = [finished(value=n) for n in range(3)]  # still in the hot table
    with connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE "{name}"')  # and the job it held with it
    assert name not in history.tables().values()
    assert history.move(before=soon()) == 3
    assert name in history.tables().values()
    assert [r for r in caplog.records if f"made the missing table {name}" in r.message]
    assert count_in(name) == 3
    assert hot_count() == 0
    assert sorted(Job.objects.values_list("pk", flat=True)) == [j.pk for j in waiting]
    assert [Job.objects.get(pk=j.pk).return_value for j in waiting] == [0, 1, 2]


# The pruner


@postgres
def test_the_pruner_makes_the_coming_days_tables(history_db):
    today = history.day_of(timezone.now())
    Pruner(options()).run_once()
    days = history.tables()
    for ahead in range(history.AHEAD + 1):
        day = today + timedelta(days=ahead)
        assert days[day] == history.table_name(day)
    assert len(days) == history.AHEAD + 1
    assert history.prepare(timezone.now()) == []  # made once


@postgres
def test_the_pruner_drops_the_days_past_retention_and_keeps_the_others(finished):
    now = timezone.now()
    pruner = Pruner(options())
    assert pruner.done_retention == 7 * 24 * 3600
    old = finished(at=now - timedelta(days=10))
    kept = finished(at=now - timedelta(days=3))
    assert history.move(before=soon()) == 2
    old_table, kept_table = table_of(old.finished_at), table_of(kept.finished_at)
    assert {old_table, kept_table} <= set(history.tables().values())
    assert pruner.run_once() == {"done": 0, "buried": 0}  # no row deleted...
    tables = set(history.tables().values())
    assert old_table not in tables  # ...its day was dropped, with the job
    assert kept_table in tables
    assert not Job.objects.filter(pk=old.pk).exists()
    assert Job.objects.get(pk=kept.pk).state == "done"
    assert count_in(kept_table) == 1


@postgres
def test_a_retention_of_days_leaves_the_rows_of_kept_days_alone(finished):
    """Retention by the day: a done job past the retention whose day is not
    over is left for its table's drop, but one still in the hot table goes."""
    pruner = Pruner(options())
    now = timezone.now()
    boundary = history.day_of(now - timedelta(seconds=pruner.done_retention))
    start = datetime.combine(boundary, time(), tzinfo=UTC)  # past the retention
    in_history = finished(at=start)
    assert history.move(before=soon()) == 1
    in_hot = finished(at=start)
    fresh = finished(at=now - timedelta(days=1))
    assert pruner.run_once() == {"done": 1, "buried": 0}
    assert not Job.objects.filter(pk=in_hot.pk).exists()
    assert home(in_history.pk) == history.table_name(boundary)  # its day is kept
    assert home(fresh.pk) == HOT


@postgres
def test_a_retention_shorter_than_a_day_deletes_rows_in_the_day_tables(finished):
    now = timezone.now()
    # The start of the day an hour ago: past the retention, in a kept day.
    start = datetime.combine(
        history.day_of(now - timedelta(hours=1)), time(), tzinfo=UTC
    )
    old = finished(at=start)
    recent = finished(at=now - timedelta(minutes=5))
    assert history.move(before=soon()) == 2
    with override_settings(TASKS=backend_with(DONE_RETENTION=3600)):
        pruner = Pruner(options())
        assert pruner.done_retention == 3600
        assert pruner.run_once() == {"done": 1, "buried": 0}
    assert not Job.objects.filter(pk=old.pk).exists()
    assert home(recent.pk) == table_of(recent.finished_at)
    assert table_of(old.finished_at) in history.tables().values()  # not dropped


SHORT_AND_LONG = {
    **backend_with(DONE_RETENTION=3600),
    "strict": {
        "BACKEND": "django_jobs.backend.JobsBackend",
        "QUEUES": ["default", "emails"],
        "OPTIONS": {},  # the default DONE_RETENTION: 7 days
    },
}


@postgres
def test_backends_sharing_a_database_keep_its_history_for_the_longest(finished):
    """docs/retention.rst: the history is kept for the longest DONE_RETENTION
    of the backends on its database; a shorter one then holds for the jobs
    still in the hot table only."""
    now = timezone.now()
    start = datetime.combine(
        history.day_of(now - timedelta(hours=1)), time(), tzinfo=UTC
    )
    in_history = finished(at=start)
    assert history.move(before=soon()) == 1
    in_hot = finished(at=start)
    with override_settings(TASKS=SHORT_AND_LONG):
        pruner = Pruner(options())
        assert pruner.done_retention == 3600
        assert pruner.run_once() == {"done": 1, "buried": 0}
    assert not Job.objects.filter(pk=in_hot.pk).exists()
    assert home(in_history.pk) == table_of(start)


@postgres
def test_dropping_a_day_leaves_no_workflow_edges_behind(history_db):
    flow, *_ = pipeline()
    run_jobs()
    # Past BURIED_RETENTION too, so that the pruner deletes the workflow.
    long_ago = timezone.now() - timedelta(days=40)
    Job.objects.filter(workflow=flow).update(finished_at=long_ago)
    Workflow.objects.filter(pk=flow.pk).update(finished_at=long_ago)
    assert history.move(before=soon()) == 5
    assert Dependency.objects.count() == 4
    assert Pruner(options()).run_once() == {"done": 0, "buried": 0}
    assert history.tables().get(history.day_of(long_ago)) is None  # dropped
    assert not Job.objects.filter(workflow=flow).exists()
    assert not Workflow.objects.filter(pk=flow.pk).exists()
    assert Dependency.objects.count() == 0  # as queue.prune leaves it


@postgres
def test_dropping_a_day_forgets_it_as_blocker_of_later_days_by_their_index(finished):
    now = timezone.now()
    old = finished(at=now - timedelta(days=40))
    later = finished(at=now - timedelta(days=2))
    Job.objects.filter(pk=later.pk).update(blocked_by=old)
    assert history.move(before=soon()) == 2
    later_table = table_of(later.finished_at)
    indexed = value_of(
        "SELECT count(*) FROM pg_indexes WHERE tablename = %s"
        " AND indexdef LIKE '%%(blocked_by_id)%%'",
        [later_table],
    )
    assert indexed == 1  # so unlink reads no day table whole
    assert history.drop(history.day_of(now) - timedelta(days=3)) == [
        table_of(old.finished_at)
    ]
    assert Job.objects.get(pk=later.pk).blocked_by_id is None
    assert home(later.pk) == later_table


@postgres
def test_a_day_is_detached_before_it_is_dropped(finished):
    """Its drop then holds up no reader of the job table, however long the
    server takes to delete its files."""
    old = finished(at=timezone.now() - timedelta(days=40))
    assert history.move(before=soon()) == 1
    name = table_of(old.finished_at)
    statements = []
    with connection.execute_wrapper(
        lambda execute, sql, *args: statements.append(sql) or execute(sql, *args)
    ):
        assert history.drop(history.day_of(timezone.now())) == [name]
    detach = next(i for i, sql in enumerate(statements) if "NO INHERIT" in sql)
    drop = next(i for i, sql in enumerate(statements) if sql.startswith("DROP"))
    assert detach < drop
    assert not history.tables()
    assert not history.detached()


@postgres
def test_the_workers_pruner_drops_a_detached_day_in_a_thread_of_its_own(
    transactional_db, finished
):
    """So that the seconds a big day's files take hold up neither readers
    nor the supervisor's loop."""
    old = finished(at=timezone.now() - timedelta(days=40))
    assert history.move(before=soon()) == 1
    name = table_of(old.finished_at)
    pruner = Pruner(options(), background=True)
    pruner.run_once()
    assert pruner.drops.thread is not None
    pruner.drops.join(timeout=30)
    assert not pruner.drops.thread.is_alive()
    assert value_of("SELECT to_regclass(%s)", [name]) is None
    assert not history.detached()
    assert not Job.objects.filter(pk=old.pk).exists()


@postgres
def test_a_day_left_detached_is_dropped_by_the_next_drop(finished):
    old = finished(at=timezone.now() - timedelta(days=40))
    assert history.move(before=soon()) == 1
    name = table_of(old.finished_at)
    with connection.cursor() as cursor:  # as a drop that died half way leaves it
        cursor.execute(f'ALTER TABLE "{name}" NO INHERIT "{HOT}"')
    assert history.detached() == {history.day_of(old.finished_at): name}
    assert history.drop(history.day_of(timezone.now())) == [name]
    assert not history.detached()
    assert value_of("SELECT to_regclass(%s)", [name]) is None


@postgres
def test_a_detached_day_within_retention_is_attached_again(finished, caplog):
    job = finished(at=timezone.now() - timedelta(days=1))
    assert history.move(before=soon()) == 1
    name = table_of(job.finished_at)
    with connection.cursor() as cursor:
        cursor.execute(f'ALTER TABLE "{name}" NO INHERIT "{HOT}"')
    assert not Job.objects.filter(pk=job.pk).exists()  # hidden, not lost
    with caplog.at_level(logging.WARNING, logger="django_jobs.queue"):
        assert history.drop(history.day_of(job.finished_at)) == []  # kept
    assert f"{name} was detached; attached again" in caplog.text
    assert Job.objects.get(pk=job.pk).state == "done"
    assert history.tables()[history.day_of(job.finished_at)] == name


# Readers across the move


@pytest.fixture
def admin_client(db):
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="pw"))
    return client


@postgres
def test_the_console_shows_a_moved_job(admin_client, finished):
    job = finished(queue="emails", value={"sum": 42})
    other = finished(queue="reports")
    assert history.move(before=soon()) == 2
    page = admin_client.get(f"{CHANGELIST}{job.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "&quot;sum&quot;: 42" in html
    assert 'jobs-state-done"' in html
    listed = admin_client.get(f"{CHANGELIST}?queue=emails")
    assert listed.status_code == 200
    assert [j.pk for j in listed.context["cl"].result_list] == [job.pk]
    everything = admin_client.get(f"{CHANGELIST}?state=done")
    assert {j.pk for j in everything.context["cl"].result_list} == {job.pk, other.pk}


@postgres
def test_jobs_show_and_stats_read_moved_jobs(history_db):
    job = queue.enqueue(task_path="tests.tasks.add", args=[2, 40], queue="emails")
    (claimed,) = queue.claim(worker_id="w")
    queue.complete(job.pk, token=claimed.claim_token, return_value=42)
    assert history.move(before=soon()) == 1
    assert hot_count() == 0
    out = StringIO()
    call_command("jobs", "show", str(job.pk), stdout=out, stderr=StringIO())
    assert out.getvalue().splitlines()[0] == f"Job {job.pk}: tests.tasks.add"
    assert "  state         done (finished successfully)" in out.getvalue()
    assert "Return value:\n  42" in out.getvalue()
    out = StringIO()
    call_command("jobs", "stats", "--json", stdout=out, stderr=StringIO())
    by_name = {q["name"]: q for q in json.loads(out.getvalue())["queues"]}
    assert by_name["emails"]["done_last_hour"] == 1
    assert by_name["emails"]["ready"] == 0


@postgres
def test_a_batch_whose_jobs_moved_completes_as_before(history_db):
    with batch(tasks.batch_done, kwargs={"label": "moved"}) as group:
        first = tasks.add.enqueue(1, 2)
        second = tasks.add.enqueue(3, 4)
    (job_a, job_b) = queue.claim(worker_id="w", limit=2)
    queue.complete(job_a.pk, token=job_a.claim_token)
    assert history.move(before=soon()) == 1  # the first is in the history
    assert not Job.objects.filter(task_path="tests.tasks.batch_done").exists()
    queue.complete(job_b.pk, token=job_b.claim_token)
    assert history.move(before=soon()) == 1  # and now both
    callback = Job.objects.get(task_path="tests.tasks.batch_done")
    assert callback.kwargs == {
        "label": "moved",
        "batch_id": group.pk,
        "done": 2,
        "failed": 0,
        "job_ids": sorted([int(first.id), int(second.id)]),
    }
    assert queue.settle([group.pk]) == []  # never twice
    assert queue.settle_pending() == []


@postgres
def test_a_batch_settled_after_all_its_jobs_moved_counts_them_done(history_db):
    """The rescuer's net (``settle_pending``) reads members in the history."""
    with batch(tasks.batch_done, kwargs={"label": "late"}) as group:
        ids = [int(tasks.add.enqueue(n, n).id) for n in range(3)]
    for job in queue.claim(worker_id="w", limit=3):
        queue.complete(job.pk, token=job.claim_token)
    callback = Job.objects.get(task_path="tests.tasks.batch_done")
    # As if that completion had been missed: settled again after the move.
    callback.delete()
    Batch.objects.filter(pk=group.pk).update(completed_at=None, callback_job=None)
    assert history.move(before=soon()) == 3
    (again,) = queue.settle_pending()
    assert Job.objects.get(pk=again).kwargs["done"] == 3
    assert Job.objects.get(pk=again).kwargs["job_ids"] == ids


@postgres
def test_a_job_enqueued_after_a_moved_done_job_is_ready(history_db):
    first = w.crawl.enqueue("x")
    run_jobs()
    assert history.move(before=soon()) == 1
    with after(first):
        later = w.match.enqueue()
    assert Job.objects.get(pk=later.id).state == "ready"


@postgres
def test_a_workflow_runs_on_with_its_upstream_jobs_in_the_history(history_db):
    flow, crawls, matched, analyzed = pipeline()
    run_jobs(tasks=[w.crawl], limit=1)  # one crawl done, then moved
    assert history.move(before=soon()) == 1
    run_jobs(tasks=[w.crawl])  # the last crawl's completion releases match
    assert Job.objects.get(pk=matched.id).state == "ready"
    assert history.move(before=soon()) == 2
    assert HOT not in {home(int(result.id)) for result in crawls.values()}
    run_jobs()
    assert w.match.get_result(matched.id).return_value == {
        "named": {"merchant": 10, "adwords": 10, "analytics": 10},
        "count": 3,
        "pages": [],
    }  # read from the upstream jobs' rows in the history
    assert w.analyze.get_result(analyzed.id).return_value == 30
    assert history.move(before=soon()) == 2
    assert hot_count() == 0
    flow.refresh_from_db()
    assert (flow.state, flow.reason) == ("succeeded", "")


# Two movers


@pytest.fixture
def no_day_tables(transactional_db):
    """Day tables made by a test that commits are dropped after it."""
    drop_day_tables()
    yield
    drop_day_tables()


@postgres
def test_two_movers_at_once_move_each_job_exactly_once(no_day_tables):
    now = timezone.now()
    total = 600
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO "{HOT}" (backend, queue, task_path, args, kwargs, state,
                priority, run_at, ttr, attempts, max_attempts, on_failure,
                enqueued_at, finished_at, reserved_by, claim_token, worker_ids,
                errors)
            SELECT 'default', 'default', 'tests.tasks.noop', '[]', '{{}}', 'done',
                0, %s, 300, 1, 3, 'bury', %s,
                %s - (n %% 3) * interval '1 day' - n * interval '1 ms',
                '', '', '["w"]', '[]'
            FROM generate_series(1, {total}) AS n""",
            [now, now, now],
        )
    for days in range(3):  # made ahead, as in the normal run (two makers: below)
        history.create(history.day_of(now - timedelta(days=days)))
    start = threading.Barrier(2)
    moved, errors = [], []

    def mover():
        try:
            start.wait(timeout=10)
            while count := history.move(before=soon(), limit=40):
                moved.append(count)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=mover) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    moved.append(history.move(before=soon()))  # what a locked batch left
    assert sum(moved) == total
    days = history.tables()
    in_days = sum(count_in(name) for name in days.values())
    assert hot_count() == 0
    assert in_days == total
    assert value_of(f'SELECT count(DISTINCT id) FROM "{HOT}"') == total
    for day, name in days.items():  # each in its own day's table
        start_at = datetime.combine(day, time(), tzinfo=UTC)
        assert (
            value_of(
                f'SELECT count(*) FROM "{name}"'
                " WHERE finished_at < %s OR finished_at >= %s",
                [start_at, start_at + timedelta(days=1)],
            )
            == 0
        )


def waiting_on_a_lock() -> int:
    """Locks other sessions wait for (pg_locks is read afresh each time)."""
    return value_of(
        "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid <> pg_backend_pid()"
    )


@postgres
def test_two_makers_of_one_day_table_both_succeed(no_day_tables):
    """Two movers that meet the same missing day (or two backends' pruners
    preparing the same day ahead) make its table at the same moment."""
    day = history.day_of(timezone.now()) + timedelta(days=30)
    made = threading.Event()
    errors = []

    def first():
        try:
            with transaction.atomic():
                history.create(day)
                made.set()
                deadline = time_module.monotonic() + 10
                while not waiting_on_a_lock() and time_module.monotonic() < deadline:
                    time_module.sleep(0.02)  # the second is waiting for this one
        finally:
            made.set()
            connections.close_all()

    def second():
        try:
            made.wait(timeout=10)
            history.create(day)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert history.tables()[day] == history.table_name(day)
    assert not errors, errors


# The hot path's plans


def plan_of(sql: str, params) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        return json.dumps(cursor.fetchone()[0])


@pytest.fixture
def day_tables(finished, make_job):
    """Four day tables, two of them holding a job, and a ready job."""
    now = timezone.now()
    history.prepare(now)
    finished(at=now - timedelta(days=3))
    finished()
    assert history.move(before=soon()) == 2
    assert len(history.tables()) == 4
    make_job()
    with connection.cursor() as cursor:
        cursor.execute(f'ANALYZE "{HOT}"')
    # A query of done jobs does read them (so the plans below could have).
    plan = plan_of(f"SELECT id FROM \"{HOT}\" WHERE state = 'done'", [])
    assert f"{history.PREFIX}2" in plan


def day_tables_in(plan: str) -> set[str]:
    return {
        relation
        for relation in re.findall(r'"Relation Name": "([^"]+)"', plan)
        if relation.startswith(history.PREFIX)
    }


@postgres
def test_the_completion_never_reads_the_day_tables(day_tables):
    sql, params = queue_sql.completion(
        connection,
        outcomes=[(1, "t", None, None)],
        now=timezone.now(),
        cleared=guard.unreserved(),
    )
    plan = plan_of(sql, params)
    assert f'"Relation Name": "{HOT}"' in plan, plan
    assert "_d2" not in plan, day_tables_in(plan)


@postgres
@pytest.mark.parametrize("queues", [None, ["default"]], ids=["any", "named"])
def test_the_claim_never_reads_the_day_tables(day_tables, queues):
    sql, params = queue.claim_statement(
        connection, worker_id="w", queues=queues, limit=1, backend="default"
    )
    plan = plan_of(sql, params)
    assert f'"Relation Name": "{HOT}"' in plan, plan
    assert "_d2" not in plan, day_tables_in(plan)


# SQLite


@pytest.mark.skipif("connection.vendor != 'sqlite'")
def test_on_sqlite_done_jobs_stay_in_the_job_table(claimed):
    assert not history.available()
    duty = History(options())
    assert duty.enabled is False
    assert duty.due_at() is None
    assert Pruner(options()).history is False
    job = claimed()
    queue.complete(job.pk, token=job.claim_token, return_value=7)
    Job.objects.filter(pk=job.pk).update(
        finished_at=timezone.now() - timedelta(hours=1)
    )
    assert duty.run_once() == 0
    assert Pruner(options()).run_once() == {"done": 0, "buried": 0}
    row = Job.objects.get(pk=job.pk)
    assert (row.state, row.return_value) == ("done", 7)
    assert Job.objects.count() == 1


def test_the_history_is_kept_by_the_retention_of_workers_on_another_alias():
    """A backend whose workers reach its database by another alias
    (``WORKER_DATABASE``, docs/pgbouncer.rst) still sets how long it is kept."""
    tasks = backend_with(DONE_RETENTION=3600, WORKER_DATABASE="direct")
    with override_settings(TASKS=tasks):
        assert history_retention("direct") == 3600
        assert history_retention("default") == 3600
        assert history_retention("elsewhere") is None  # nobody's: kept
