"""Bad values at enqueue: the same clear error on SQLite and PostgreSQL, no row.

Each of these reached the database before, where PostgreSQL answered with a
raw DataError (or Python with an OverflowError or RecursionError), and
SQLite stored what PostgreSQL refuses.
"""

from datetime import UTC, datetime, timedelta

import pytest

from django_jobs.arguments import max_depth
from django_jobs.compat import InvalidTask
from django_jobs.models import Job
from tests import tasks

DAY = timedelta(days=1)


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("a\x00b",), {}, r"args\[0\] cannot be stored .*NUL character"),
        (("\ud800",), {}, r"args\[0\] cannot be stored .*lone surrogate"),
        ((), {"key": "x\x00"}, r"kwargs\['key'\] cannot be stored .*NUL"),
        ((), {"k\x00": 1}, r"kwargs key .* cannot be stored .*NUL"),
        ((nested(5000),), {}, r"args cannot be stored .*nests deeper than \d+"),
        ((10**5000,), {}, r"args\[0\] cannot .*an integer of more than 4000 digits"),
    ],
)
def test_arguments_databases_cannot_store(db, args, kwargs, message):
    with pytest.raises(TypeError, match=r"Task 'tests\.tasks\.echo': " + message):
        tasks.echo.enqueue(*args, **kwargs)
    assert not Job.objects.exists()


def test_nesting_up_to_the_limit_is_fine(db):
    limit = max_depth()  # 100; MariaDB's JSON_VALID stops at 31
    result = tasks.echo.enqueue(nested(limit - 1))
    assert Job.objects.get(pk=result.id).args == [nested(limit - 1)]
    with pytest.raises(TypeError, match=f"args cannot be stored .*deeper than {limit}"):
        tasks.echo.enqueue(nested(limit))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ttr": 2**31}, r"ttr must be a positive whole number of at most 2147483647"),
        ({"max_attempts": 2**31}, r"max_attempts must be a positive whole number"),
        ({"queue_name": "q" * 101}, r"queue_name must be a non-empty string"),
        ({"queue_name": ""}, r"queue_name must be a non-empty string"),
        ({"expires": 1e300}, r"expires is too far in the future"),
        ({"run_after": timedelta.max}, r"run_after is too far in the future"),
        (
            {"run_after": datetime(9999, 12, 31, tzinfo=UTC), "expires": 2 * DAY},
            r"expires is too far in the future",
        ),
    ],
)
def test_options_databases_cannot_store(db, options, message):
    with pytest.raises(InvalidTask, match=r"Task 'tests\.tasks\.echo': " + message):
        tasks.echo.using(**options).enqueue(1)
    assert not Job.objects.exists()


def test_the_largest_values_are_stored(db):
    result = tasks.echo.using(ttr=2**31 - 1, max_attempts=2**31 - 1).enqueue()
    job = Job.objects.get(pk=result.id)
    assert (job.ttr, job.max_attempts) == (2**31 - 1, 2**31 - 1)


def test_checkpoint_data_is_checked_like_arguments():
    from django_jobs.arguments import to_json

    with pytest.raises(TypeError, match=r"checkpoint data\['at'\] cannot be stored"):
        to_json({"at": "\x00"}, "tests.tasks.five_steps", "checkpoint data")
