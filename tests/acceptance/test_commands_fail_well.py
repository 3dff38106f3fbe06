"""``manage.py jobs`` and ``enqueue()`` when the project is not right yet: a
schedule with a typo, a database that ``migrate`` has not seen. One line
that says what to do, never a traceback of the database driver."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest
from django.db import connection

from tests.acceptance.conftest import ROOT, database_url

MIGRATE = "run 'manage.py migrate'."


def manage(*args: str, url: str, settings: str = "tests.settings"):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": settings, "DATABASE_URL": url},
    )


@pytest.fixture
def unmigrated(django_db_setup, django_db_blocker, tmp_path):
    """The URL of a database of the suite's kind that migrate never saw."""
    if connection.vendor == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        return
    with django_db_blocker.unblock():
        name = f"{connection.settings_dict['NAME']}_unmigrated"
        url = database_url()
        if connection.vendor == "mysql":  # through the suite's own connection
            with connection.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
                cursor.execute(f"CREATE DATABASE `{name}`")
            try:
                yield f"{url.rpartition('/')[0]}/{name}"
            finally:
                with connection.cursor() as cursor:
                    cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
            return
    server = psycopg.connect(url, autocommit=True)
    server.execute(f'DROP DATABASE IF EXISTS "{name}"')
    server.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{url.rpartition('/')[0]}/{name}"
    finally:
        server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        server.close()


def test_a_schedule_typo_does_not_fail_the_readiness_probe(db):
    url = database_url()
    probe = manage("jobs", "health", url=url, settings="tests.bad_cron_settings")
    assert (probe.returncode, probe.stdout, probe.stderr) == (
        0,
        "ok: database 'default' answers\n",
        "",
    )
    stats = manage("jobs", "stats", url=url, settings="tests.bad_cron_settings")
    assert (stats.returncode, stats.stderr) == (0, "")
    check = manage("check", url=url, settings="tests.bad_cron_settings")
    assert check.returncode == 1
    assert "django_jobs.E005" in check.stderr  # the deploy's check still says it


@pytest.mark.parametrize("args", [["stats"], ["list"], ["show", "1"], ["retry", "1"]])
def test_jobs_before_migrate_says_so_in_one_line(unmigrated, args):
    done = manage("jobs", *args, url=unmigrated)
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(
        "CommandError: database 'default' is missing django-jobs' migrations ("
    )
    assert line.endswith(MIGRATE)
    assert "django_jobs_job" in line  # the database's own words, quoted


def test_health_before_migrate_says_so_in_one_line(unmigrated):
    done = manage("jobs", "health", url=unmigrated)
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith("unhealthy: database 'default' answers, but its job table")


def test_enqueue_before_migrate_names_migrate(unmigrated):
    code = "from tests.tasks import tick; tick.enqueue('x')"
    done = manage("shell", "-c", code, url=unmigrated)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "django_jobs.exceptions.NotMigrated: database 'default' is missing "
        "django-jobs' migrations ("
    )
    assert last.endswith(MIGRATE)
    # The driver's error is quoted, not chained: no second traceback.
    assert "The above exception" not in done.stderr
    assert "During handling" not in done.stderr
