"""What counts as "migrate has not run": a table or column of django-jobs'
that the database does not have, in its own words, and nothing else."""

import pytest
from django.db import DatabaseError, connection, transaction

from django_jobs.exceptions import NotMigrated
from django_jobs.queue import not_migrated


def error_of(sql: str) -> DatabaseError:
    if connection.vendor == "mysql":  # no ANSI_QUOTES: names in backticks
        sql = sql.replace('"', "`")
    with (
        pytest.raises(DatabaseError) as failed,
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)
    return failed.value


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM django_jobs_gone",
        'SELECT * FROM "django_jobs_gone" AS "gone"',
        'SELECT "django_jobs_job"."gone" FROM "django_jobs_job"',
        'INSERT INTO "django_jobs_job" ("gone") VALUES (1)',
    ],
)
def test_a_missing_table_or_column_of_ours(db, sql):
    error = error_of(sql)
    found = not_migrated(error, "default")
    assert isinstance(found, NotMigrated)
    assert isinstance(found, DatabaseError)  # what callers catch already
    assert str(found).startswith(
        "database 'default' is missing django-jobs' migrations ("
    )
    assert str(found).endswith("): run 'manage.py migrate'.")
    assert not_migrated(found, "default") is found


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM shop_order",  # not ours
        'SELECT "shop_order"."django_jobs_id" FROM "django_jobs_job"',
        "SELEC 1",  # a bug, not a migration
        'INSERT INTO "django_jobs_job" ("id") VALUES (NULL)',
    ],
)
def test_any_other_error(db, sql):
    assert not_migrated(error_of(sql), "default") is None


def test_another_database_names_its_alias():
    assert str(NotMigrated("jobs", "no such table: django_jobs_job")).endswith(
        "run 'manage.py migrate --database jobs'."
    )
