"""Text and bytes on every database, MariaDB's limits in particular (issue 26).

utf8mb4 throughout: a four-byte character (an emoji) survives arguments,
errors, output and return values; NUL and lone surrogates are refused in
arguments and escaped in what a job hands back, as on PostgreSQL; the
longest names fit MariaDB's index keys; a value too long is refused with a
clear error whatever the ``sql_mode``; dates written by hand that Python
cannot hold read as NULL.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from django.core.management import call_command
from django.db import DataError, connection

from django_jobs import queue
from django_jobs.compat import InvalidTask
from django_jobs.limit_keys import LIMIT_KEY_MAX_LENGTH
from django_jobs.models import Job
from django_jobs.validation import TASK_PATH_MAX_LENGTH
from tests import tasks

pytestmark = pytest.mark.django_db(transaction=True)

EMOJI = "héllo 🎉 𝄞 日本"  # two- three- and four-byte UTF-8

mysql_only = pytest.mark.skipif(
    "connection.vendor != 'mysql'", reason="about MariaDB and MySQL"
)


@contextmanager
def session_sql_mode(mode: str):
    """This connection with another ``sql_mode``, as a project might set it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@SESSION.sql_mode")
        (saved,) = cursor.fetchone()
        cursor.execute("SET SESSION sql_mode = %s", [mode])
        try:
            yield
        finally:
            cursor.execute("SET SESSION sql_mode = %s", [saved])


def run_burst() -> None:
    call_command("runworker", "--burst", "--concurrency", "1")


def test_four_byte_text_round_trips_in_arguments_output_and_return_value():
    result = tasks.say.enqueue(EMOJI)
    echoed = tasks.echo.enqueue(EMOJI, **{EMOJI: [EMOJI]})
    run_burst()
    said = Job.objects.get(pk=result.id)
    assert said.state == "done", said.errors
    assert said.args == [EMOJI]
    assert said.return_value == EMOJI
    assert Job.objects.get(pk=echoed.id).return_value == {
        "args": [EMOJI],
        "kwargs": {EMOJI: [EMOJI]},
    }


def test_four_byte_text_round_trips_in_errors():
    result = tasks.fail.using(max_attempts=1).enqueue(EMOJI)
    run_burst()
    job = Job.objects.get(pk=result.id)
    assert job.state == "buried"
    assert EMOJI in job.errors[-1]["traceback"]


def test_four_byte_identifiers_round_trip_and_differ_by_case(db):
    name = "🎉queue"
    job = queue.enqueue(
        task_path="tests.tasks.noop",
        queue=name,
        unique_keys=[EMOJI],
        limit_keys=[EMOJI],
    )
    job.refresh_from_db()
    assert (job.queue, job.unique_key, job.limit_key) == (name, EMOJI, EMOJI)
    assert Job.objects.filter(queue="🎉QUEUE").count() == 0  # binary collation
    assert Job.objects.filter(unique_key=EMOJI).count() == 1


def test_nul_and_lone_surrogates_are_refused_in_arguments(db):
    for bad in ("a\x00b", "\ud800"):
        with pytest.raises(TypeError, match="cannot be stored"):
            tasks.echo.enqueue(bad)
    assert not Job.objects.exists()


def test_nul_and_lone_surrogates_are_escaped_in_what_a_job_hands_back(claimed):
    claimed = claimed()
    queue.save_logs(
        claimed.pk,
        token=claimed.claim_token,
        attempt=1,
        text="out\x00put \udc80 " + EMOJI,
    )
    queue.complete(
        claimed.pk, token=claimed.claim_token, return_value={"k\x00": "\ud800 🎉"}
    )
    job = Job.objects.get(pk=claimed.pk)
    assert job.logs[-1]["text"] == "out\\x00put \\udc80 " + EMOJI
    assert job.return_value == {"k\\x00": "\\ud800 🎉"}


def test_the_longest_names_and_keys_fit(db):
    """Every varchar at its maximum, in four-byte characters: MariaDB's index
    keys (3072 bytes) and row size hold them."""
    job = queue.enqueue(
        task_path="tests.tasks.noop",
        queue="🎉" * 100,
        unique_keys=["🎉" * 255],
        limit_keys=["🎉" * LIMIT_KEY_MAX_LENGTH],
    )
    job.refresh_from_db()
    assert job.queue == "🎉" * 100
    assert job.unique_key == "🎉" * 255
    assert job.limit_key == "🎉" * LIMIT_KEY_MAX_LENGTH
    (claimed,) = queue.claim(worker_id="w1", limit=1, queues=["🎉" * 100])
    assert claimed.pk == job.pk


@pytest.mark.parametrize("mode", ["server default", "not strict"])
def test_a_value_too_long_is_refused_not_truncated(db, mode):
    strict = mode == "server default" or connection.vendor != "mysql"
    with session_sql_mode("") if not strict else _nothing():
        with pytest.raises(InvalidTask, match="queue_name must be"):
            tasks.noop.using(queue_name="q" * 101).enqueue()
        with pytest.raises(TypeError, match=r"args.*cannot be stored"):
            tasks.echo.enqueue("\x00" * 10)
    assert not Job.objects.exists()


@mysql_only
def test_strict_mode_refuses_too_long_text_below_the_checks(db):
    """Past the checks (``queue.enqueue`` takes the caller's word), the
    server's default STRICT_TRANS_TABLES makes a too-long value an error."""
    with pytest.raises(DataError, match="Data too long for column 'task_path'"):
        queue.enqueue(task_path="tests.tasks." + "x" * TASK_PATH_MAX_LENGTH)
    assert not Job.objects.exists()


@mysql_only
def test_without_strict_mode_the_server_cuts_text_hence_the_checks(db):
    """Without STRICT_TRANS_TABLES, MariaDB cuts a too-long value with a
    warning (Django's check W002 warns of that mode): which is why
    django-jobs checks every length before writing, as above."""
    job = queue.enqueue(task_path="tests.tasks.noop")
    with session_sql_mode(""):
        Job.objects.filter(pk=job.pk).update(queue="q" * 150)
    assert len(Job.objects.get(pk=job.pk).queue) == 100


@mysql_only
def test_index_keys_stay_under_innodbs_limit(db):
    """Each index's key, at the columns' maximum in utf8mb4, is at most 3072
    bytes (InnoDB's limit with the DYNAMIC row format)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.table_name, s.index_name,"
            " SUM(COALESCE(c.character_octet_length, 8))"
            " FROM information_schema.statistics s"
            " JOIN information_schema.columns c ON c.table_schema = s.table_schema"
            " AND c.table_name = s.table_name AND c.column_name = s.column_name"
            " WHERE s.table_schema = DATABASE() AND s.table_name LIKE 'django_jobs_%%'"
            " GROUP BY s.table_name, s.index_name"
        )
        sizes = {(table, index): int(size) for table, index, size in cursor}
        cursor.execute(
            "SELECT column_name, character_set_name, collation_name"
            " FROM information_schema.columns WHERE table_schema = DATABASE()"
            " AND table_name = 'django_jobs_job' AND data_type = 'varchar'"
        )
        charsets = {row[0]: row[1:] for row in cursor}
    assert sizes
    assert {key: size for key, size in sizes.items() if size > 3072} == {}
    for column in ("queue", "task_path", "unique_key", "limit_key", "backend"):
        assert charsets[column] == ("utf8mb4", "utf8mb4_bin"), column


@mysql_only
@pytest.mark.parametrize(
    "value", ["0000-00-00 00:00:00", "2024-02-30 10:00:00", "0000-01-01 00:00:00"]
)
def test_a_zero_or_impossible_date_reads_as_null_and_is_buried_alone(make_job, value):
    bad = make_job(priority=50)
    good = make_job(priority=10)
    with session_sql_mode("ALLOW_INVALID_DATES"), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE django_jobs_job SET run_at = %s WHERE id = %s", [value, bad.pk]
        )
    assert Job.objects.get(pk=bad.pk).run_at is None
    assert list(Job.objects.filter(pk=bad.pk).values_list("run_at", flat=True)) == [
        None
    ]
    claimed = queue.claim(worker_id="w1", limit=1)
    assert [job.pk for job in claimed] == [good.pk]
    row = Job.objects.get(pk=bad.pk)
    assert row.state == "buried"
    assert "run_at cannot be read" in row.errors[-1]["traceback"]


@contextmanager
def _nothing():
    yield
