"""Tasks that do their work, then return what a job cannot store.

Each records a row first (its "work"): a test counts the rows to see that the
work was done once, not once per attempt.
"""

import datetime
import decimal
import uuid

from django_jobs.compat import task

from .models import Record


@task
def charge(key: str) -> decimal.Decimal:
    Record.objects.create(key=key)
    return decimal.Decimal("19.99")


@task
def send_at(key: str) -> datetime.datetime:
    Record.objects.create(key=key)
    return datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


@task
def new_id(key: str) -> uuid.UUID:
    Record.objects.create(key=key)
    return uuid.UUID("12345678-1234-5678-1234-567812345678")


@task
def saved(key: str) -> Record:
    return Record.objects.create(key=key)


@task
def totals(key: str) -> dict:
    Record.objects.create(key=key)
    return {"lines": [{"amount": decimal.Decimal("1.50")}]}
