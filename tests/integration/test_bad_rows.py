"""Rows written by hand in SQL: each bad row is buried alone; the rest flow."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from django_jobs import queue
from django_jobs.models import Job
from tests.integration import conftest

pytestmark = pytest.mark.django_db(transaction=True)

#: MariaDB and MySQL have no infinite times; their unreadable ones are zero
#: dates (see test_mysql_text.py for impossible ones such as February 30).
MYSQL_TIMES = {"-infinity": "0000-00-00 00:00:00"}


def write_by_hand(job_id: int, column: str, text: str) -> None:
    """As conftest's; on MariaDB, JSON that its CHECK refuses (invalid, or
    nested 32 deep) cannot be in a row: the test does not apply there."""
    if connection.vendor == "mysql":
        text = MYSQL_TIMES.get(text, text)
        if Job._meta.get_field(column).get_internal_type() == "JSONField":
            with connection.cursor() as cursor:
                cursor.execute("SELECT JSON_VALID(%s)", [text])
                if not cursor.fetchone()[0]:
                    pytest.skip("MariaDB's CHECK refuses such JSON in any row")
    conftest.write_by_hand(job_id, column, text)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


BAD_VALUES = [
    ("run_at", "-infinity", "run_at cannot be read as a date and time"),
    ("args", nested(1500), "args cannot be read"),
    ("args", json.dumps({"a": 1, "b": 2}), "args is a JSON object, not a list"),
    ("args", json.dumps("abc"), "args is a JSON string, not a list"),
    ("kwargs", json.dumps([1, 2]), "kwargs is a JSON array, not an object"),
    ("kwargs", "null", "kwargs is a JSON null, not an object"),
    ("args", nested(150), "args nests deeper than 100"),
    ("checkpoint", nested(150), "checkpoint nests deeper than 100"),
]


@pytest.mark.parametrize(("column", "value", "reason"), BAD_VALUES)
def test_the_claim_buries_a_bad_row_alone_and_returns_the_good_ones(
    make_job, column, value, reason
):
    bad = make_job(priority=50)
    good = make_job(priority=10)
    write_by_hand(bad.pk, column, value)

    claimed = queue.claim(worker_id="w1", limit=1)

    assert [job.pk for job in claimed] == [good.pk]  # claimed in the bad one's place
    row = Job.objects.get(pk=bad.pk)
    assert row.state == "buried"
    error = row.errors[-1]
    assert error["exception_class_path"] == "django_jobs.exceptions.InvalidJobRow"
    assert reason in error["traceback"]
    assert (row.reserved_by, row.claim_token) == ("", "")


@pytest.mark.skipif(
    "connection.vendor == 'mysql'", reason="MariaDB and MySQL have no infinity"
)
def test_positive_infinity_is_never_due_and_still_loads(make_job):
    later = make_job()
    write_by_hand(later.pk, "run_at", "infinity")
    assert queue.claim(worker_id="w1", limit=5) == []
    assert Job.objects.get(pk=later.pk).run_at is None  # shown, not a crash
    assert Job.objects.get(pk=later.pk).display_state == "ready"


def test_a_bad_row_loads_in_querysets(make_job):
    job = make_job()
    write_by_hand(job.pk, "enqueued_at", "-infinity")
    write_by_hand(job.pk, "args", nested(1500))
    loaded = Job.objects.get(pk=job.pk)
    assert loaded.enqueued_at is None
    assert str(loaded.args).startswith("<unreadable: RecursionError")
    assert list(Job.objects.values_list("enqueued_at", flat=True)) == [None]


def test_many_bad_rows_do_not_stop_the_claim(make_job):
    bad = [make_job(priority=90) for _ in range(5)]
    good = make_job(priority=0)
    for job in bad:
        write_by_hand(job.pk, "args", json.dumps({"by": "hand"}))
    assert [job.pk for job in queue.claim(worker_id="w1", limit=2)] == [good.pk]
    assert set(Job.objects.filter(state="buried").values_list("pk", flat=True)) == {
        job.pk for job in bad
    }


@pytest.mark.skipif("connection.vendor != 'sqlite'")
def test_sqlite_text_in_a_number_column_is_a_bad_row(make_job):
    bad = make_job(priority=50)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE django_jobs_job SET ttr = 'soon' WHERE id = %s", [bad.pk]
        )
    assert queue.claim(worker_id="w1", limit=1) == []
    assert (
        "ttr is 'soon', not a whole number"
        in Job.objects.get(pk=bad.pk).errors[-1]["traceback"]
    )


def test_the_jobs_command_and_the_pruner_work_past_bad_rows(make_job):
    bad, good = make_job(), make_job()
    write_by_hand(bad.pk, "args", nested(1500))
    write_by_hand(bad.pk, "enqueued_at", "-infinity")
    Job.objects.filter(pk__in=[bad.pk, good.pk]).update(
        state="done", finished_at=timezone.now() - timedelta(days=60)
    )

    listed, shown = StringIO(), StringIO()
    call_command("jobs", "list", "--state", "done", stdout=listed)
    call_command("jobs", "show", str(bad.pk), stdout=shown)
    assert str(bad.pk) in listed.getvalue()
    assert str(good.pk) in listed.getvalue()
    assert "unreadable" in shown.getvalue()

    pruned = queue.prune(done_before=timezone.now(), buried_before=None)
    assert pruned["done"] == 2
    assert not Job.objects.exists()
