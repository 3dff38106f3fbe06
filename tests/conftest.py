import pytest
from django.db import connection

# The fixtures django-jobs offers its users' test suites (run_jobs, eager_jobs).
pytest_plugins = ["django_jobs.testing.fixtures"]


def pytest_collection_modifyitems(config, items):
    """Tests marked ``postgres`` run in the PostgreSQL pass of the suite only."""
    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(
        reason="needs PostgreSQL (run with DATABASE_URL=postgres://...)"
    )
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)
