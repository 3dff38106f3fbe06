"""Tasks whose jobs have a key, for the tests of limits per key."""

import time

from django_jobs.compat import task


@task(queue_name="keyed", limit_key="customer")
def for_customer(customer, n: int = 0) -> int:
    return n


@task(queue_name="keyed", limit_key="customer")
def sleep_for(customer, seconds: float, n: int = 0) -> float:
    time.sleep(seconds)
    return seconds


@task(queue_name="keyed")
def without_key(n: int = 0) -> int:
    return n
