"""Tasks used by the tests. Module level, as workers import them by path."""

import asyncio

from django.tasks import task

from .models import Record


@task
def noop() -> None:
    return None


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def echo(*args, **kwargs):
    return {"args": list(args), "kwargs": kwargs}


@task
async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


@task(takes_context=True)
def with_context(context, value: int) -> int:
    return value


@task(queue_name="emails", priority=5, ttr=60, max_attempts=4, on_failure="delete")
def configured(value: int) -> int:
    return value


@task(backend="strict")
def strict_task(value: int) -> int:
    return value


@task
def fail(message: str = "boom") -> None:
    raise ValueError(message)


@task
def record(key: str) -> None:
    Record.objects.create(key=key)
