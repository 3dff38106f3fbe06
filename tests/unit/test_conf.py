import pytest
from django.core.exceptions import ImproperlyConfigured

from django_jobs.conf import JobsOptions


def test_defaults():
    options = JobsOptions.from_dict({})
    assert options.DEFAULT_TTR == 300
    assert options.DEFAULT_MAX_ATTEMPTS == 3
    assert options.DEFAULT_ON_FAILURE == "bury"
    assert options.DATABASE is None


def test_values_are_kept():
    options = JobsOptions.from_dict(
        {"DEFAULT_TTR": 60, "RETRY_BACKOFF": 1.5, "DATABASE": "jobs", "KILL_GRACE": 0}
    )
    assert (options.DEFAULT_TTR, options.RETRY_BACKOFF, options.DATABASE) == (
        60,
        1.5,
        "jobs",
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"DEFAULT_TTL": 5}, "Unknown option(s) 'DEFAULT_TTL'"),
        ({"DEFAULT_TTR": 0}, "'DEFAULT_TTR'] must be a positive integer, got 0"),
        ({"DEFAULT_TTR": "60"}, "must be a positive integer, got '60'"),
        ({"DEFAULT_MAX_ATTEMPTS": True}, "must be a positive integer, got True"),
        ({"DEFAULT_ON_FAILURE": "drop"}, "must be one of bury, delete, got 'drop'"),
        ({"RETRY_BACKOFF": -1}, "must be a number of seconds (zero or more)"),
        ({"RETRY_BACKOFF": float("nan")}, "must be a number of seconds"),
        ({"HEARTBEAT_INTERVAL": 0}, "must be more than zero, got 0"),
        ({"DATABASE": ""}, "must be a database alias"),
        ({"RETRY_BACKOFF": 100, "RETRY_BACKOFF_MAX": 10}, "must not exceed"),
        ({"HEARTBEAT_INTERVAL": 30, "WORKER_TIMEOUT": 10}, "must be longer than"),
        ({"SCALE_DOWN_AFTER": 0}, "'SCALE_DOWN_AFTER'] must be more than zero"),
        ({"CONNECTION_BUDGET": 0}, "'CONNECTION_BUDGET'] must be a positive integer"),
        ({"CONNECTION_BUDGET": "40"}, "must be a positive integer, got '40'"),
        ({"SCALE_MIN_FREE_MEMORY": -1}, "must be a whole number, zero or more"),
        ({"SCALE_MIN_FREE_MEMORY": "1GB"}, "must be a whole number, zero or more"),
        ({"HISTORY_DELAY": None}, "'HISTORY_DELAY'] must be a number of seconds"),
        ({"HISTORY_DELAY": -5}, "'HISTORY_DELAY'] must be a number of seconds"),
    ],
)
def test_bad_values_name_the_option(options, message):
    with pytest.raises(ImproperlyConfigured) as excinfo:
        JobsOptions.from_dict(options)
    assert message in str(excinfo.value)
