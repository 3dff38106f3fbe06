"""Shared set-up for the benchmark scripts: database, timing and the table."""

from __future__ import annotations

import os
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django() -> None:
    """Configure Django for bench/settings.py, creating and migrating its database."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    create_database()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def create_database() -> None:
    """CREATE DATABASE for the configured NAME if it does not exist."""
    from django.db import connection

    if connection.vendor == "mysql":
        import MySQLdb

        params = connection.get_connection_params()
        name = params.pop("database", None) or params.pop("db")
        admin = MySQLdb.connect(**params)
        try:
            admin.cursor().execute(
                f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4"
            )
        finally:
            admin.close()
        return
    import psycopg

    params = connection.get_connection_params()
    name = params.pop("dbname")
    params["dbname"] = "postgres"
    with psycopg.connect(**params, autocommit=True) as admin:
        exists = admin.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
        if not exists:
            admin.execute(f'CREATE DATABASE "{name}"')


TRUNCATED = ("django_jobs_job", "django_jobs_dependency", "django_jobs_workflow")


def truncate_jobs() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            # One table per TRUNCATE, and InnoDB refuses to truncate a table
            # that a foreign key references unless the checks are off.
            cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
            for table in TRUNCATED:
                cursor.execute(f"TRUNCATE {table}")
            cursor.execute("SET FOREIGN_KEY_CHECKS = 1")
            return
        cursor.execute(
            "TRUNCATE django_jobs_job, django_jobs_dependency, django_jobs_workflow"
            " RESTART IDENTITY"
        )


def measure(runs: int, once: Callable[[], float]) -> list[float]:
    """Call ``once`` ``runs`` times; each call returns a rate in jobs/s."""
    return [once() for _ in range(runs)]


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence]) -> None:
    widths = [
        max(len(str(cell)) for cell in column)
        for column in zip(header, *rows, strict=True)
    ]
    print(f"\n{title}")
    line = "  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True)))


def summary(rates: Sequence[float]) -> list[str]:
    return [
        f"{statistics.median(rates):,.0f}",
        f"{min(rates):,.0f}",
        f"{max(rates):,.0f}",
    ]
