"""Limits per key: rates, windows, settings and task declarations that are
wrong fail where they are written, with words that say what is expected."""

from datetime import UTC, datetime

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_jobs.compat import InvalidTask, task
from django_jobs.conf import JobsOptions
from django_jobs.queue.keys import deal
from django_jobs.rates import BadRate, describe_rate, parse_rate, window_start
from tests import key_tasks


def sync(customer_id, payload=None):
    return customer_id


def with_context(context, account):
    return account


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1000/hour", (1000, 3600)),
        ("5/second", (5, 1)),
        ("5/s", (5, 1)),
        ("100/min", (100, 60)),
        ("2/day", (2, 86400)),
        (" 3 / minute ", (3, 60)),
        ((1000, "hour"), (1000, 3600)),
        ([7, "h"], (7, 3600)),
        (10, (10, 1)),
    ],
)
def test_rates_people_write(value, expected):
    assert parse_rate(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1000/fortnight", "unknown window 'fortnight'"),
        ("0/hour", "at least one start per window"),
        ("-5/hour", "is not a rate"),
        ("1.5/hour", "is not a rate"),
        ("lots", "is not a rate"),
        ("/hour", "is not a rate"),
        (0, "at least one start per window"),
        (-1, "at least one start per window"),
        (2.5, "is not a rate"),
        (True, "is not a rate"),
        (None, "is not a rate"),
        ((10, "week"), "unknown window 'week'"),
        ((1.5, "hour"), "is not a rate"),
    ],
)
def test_bad_rates(value, message):
    with pytest.raises(BadRate, match=message):
        parse_rate(value)


def test_rates_read_back_as_written():
    assert describe_rate(1000, 3600) == "1000/hour"
    assert describe_rate(5, 1) == "5/second"
    assert describe_rate(None, None) == ""


def test_windows_are_aligned_to_the_clock():
    now = datetime(2026, 12, 6, 10, 47, 13, 500, tzinfo=UTC)
    assert window_start(now, 1) == now.replace(microsecond=0)
    assert window_start(now, 60) == datetime(2026, 12, 6, 10, 47, tzinfo=UTC)
    assert window_start(now, 3600) == datetime(2026, 12, 6, 10, tzinfo=UTC)
    assert window_start(now, 86400) == datetime(2026, 12, 6, tzinfo=UTC)


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"key_concurrency": 0}, "'key_concurrency'] must be a positive integer"),
        ({"key_concurrency": -2}, "'key_concurrency'] must be a positive integer"),
        ({"key_concurrency": "3"}, "'key_concurrency'] must be a positive integer"),
        ({"key_rate_limit": "1000/fortnight"}, "unknown window 'fortnight'"),
        ({"key_rate_limit": "often"}, "'often' is not a rate"),
        ({"key_rate_limit": 0}, "at least one start per window"),
        ({"per_key": 3}, "must be a dict of limits"),
    ],
)
def test_bad_limits_per_key_in_settings(limits, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        JobsOptions.from_dict({"QUEUE_LIMITS": {"api": limits}})


def test_good_limits_per_key_in_settings():
    limits = {"key_concurrency": 2, "key_rate_limit": (1000, "hour")}
    options = JobsOptions.from_dict({"QUEUE_LIMITS": {"api": limits}})
    assert options.QUEUE_LIMITS["api"] == limits


def test_a_limit_key_must_name_a_parameter():
    with pytest.raises(
        InvalidTask,
        match=r"limit_key 'customer' is not a parameter of .*sync "
        r"\(its parameters: customer_id, payload\)",
    ):
        task(limit_key="customer")(sync)
    assert task(limit_key="customer_id")(sync).limit_key == "customer_id"


def test_the_context_is_no_key():
    with pytest.raises(InvalidTask, match="limit_key 'context' is not a parameter"):
        task(takes_context=True, limit_key="context")(with_context)
    assert task(takes_context=True, limit_key="account")(with_context)


def test_using_checks_the_limit_key_too():
    with pytest.raises(InvalidTask, match="limit_key 'nobody' is not a parameter"):
        key_tasks.for_customer.using(limit_key="nobody")
    assert key_tasks.for_customer.using(limit_key="n").limit_key == "n"


def test_dealing_gives_one_job_per_key_per_round():
    hot, a, b = [1, 2, 3, 4], [10], [20, 21]
    assert deal([hot, a, b], 5) == [1, 10, 20, 2, 21]
    assert deal([hot, a, b], 2) == [1, 10]
    assert deal([], 3) == []
