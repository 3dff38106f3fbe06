"""A read-only server (a standby, or a demoted primary reached during a
failover) is a database to wait for, not a refusal: the worker closes its
connection and tries again, and the next one may reach the new primary."""

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction

from django_jobs.worker.outage import transient
from tests.models import Record

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def error_of(statement: str) -> DatabaseError:
    with (
        pytest.raises(DatabaseError) as raised,
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("SET TRANSACTION READ ONLY")
        cursor.execute(statement)
    return raised.value


def test_a_write_a_read_only_server_refuses_is_transient():
    table = Record._meta.db_table
    exc = error_of(
        f"INSERT INTO {table} (key, job_id, pid, created_at) VALUES ('x', '', 0, now())"
    )
    assert exc.__cause__.sqlstate == "25006"
    assert transient(exc)


def test_what_the_server_refuses_for_itself_is_not_transient():
    exc = error_of("SELECT 1/0")
    assert not transient(exc)
    assert not transient(IntegrityError("duplicate key"))
