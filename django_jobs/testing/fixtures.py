"""pytest fixtures for django-jobs; opt in from your ``conftest.py``::

    pytest_plugins = ["django_jobs.testing.fixtures"]

Both give the test database access (pytest-django's ``db`` fixture).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest


@pytest.fixture
def run_jobs(db) -> Callable:
    """``django_jobs.testing.run_jobs``: call it to run the jobs enqueued so far."""
    from . import run_jobs

    return run_jobs


@pytest.fixture
def eager_jobs(db) -> Iterator[None]:
    """Every job enqueued during the test runs at once, as it is enqueued."""
    from . import run_on_enqueue

    with run_on_enqueue():
        yield
