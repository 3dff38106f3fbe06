import pytest
from django.db import connection

# The fixtures django-jobs offers its users' test suites (run_jobs, eager_jobs).
pytest_plugins = ["django_jobs.testing.fixtures"]


def pytest_collection_modifyitems(config, items):
    """Tests marked ``postgres`` run in the PostgreSQL pass of the suite only;
    slow ones marked ``database_agnostic``, whose point is not the
    database's (the async lane, tracing, hooks, reloading, autoscaling),
    run on SQLite and PostgreSQL and are not repeated on MariaDB (README,
    "Which tests run where")."""
    skips = {
        "database_agnostic": pytest.mark.skip(
            reason="its point is not the database's: proved on SQLite and PostgreSQL"
        )
        if connection.vendor == "mysql"
        else None,
        "postgres": pytest.mark.skip(
            reason="needs PostgreSQL (run with DATABASE_URL=postgres://...)"
        )
        if connection.vendor != "postgresql"
        else None,
    }
    for item in items:
        for name, skip in skips.items():
            if skip is not None and name in item.keywords:
                item.add_marker(skip)
