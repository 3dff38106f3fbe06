"""Tasks for the tests of django_jobs.testing, in a module not called tasks.py.

Module level, as every task must be; a worker imports them by dotted path.
"""

from django.db import transaction

from django_jobs.compat import task

from .models import Record


@task(takes_context=True, max_attempts=3)
def flaky(context, failures: int) -> int:
    """Fail the first ``failures`` attempts, then succeed."""
    if context.attempt <= failures:
        raise RuntimeError(f"attempt {context.attempt} failed")
    return context.attempt


@task(takes_context=True, ttr=60)
def step_through(context, steps: int, fail_at: int = 0) -> dict:
    """Checkpoint after each step; the first attempt raises at step ``fail_at``."""
    start = (context.last_checkpoint or {}).get("next", 1)
    deadlines = [context.touch().isoformat(), context.touch(600).isoformat()]
    for step in range(start, steps + 1):
        if context.attempt == 1 and step == fail_at:
            raise RuntimeError(f"failed at step {step}")
        Record.objects.create(key=f"step:{context.attempt}:{step}")
        context.checkpoint({"next": step + 1})
        context.progress(step, steps, f"step {step}")
    return {"start": start, "attempt": context.attempt, "deadlines": deadlines}


@task(queue_name="emails", priority=-5, ttr=30, max_attempts=2, on_failure="delete")
def send_email(address: str) -> str:
    if "@" not in address:
        raise ValueError(f"not an address: {address}")
    Record.objects.create(key=f"email:{address}")
    return address


@task(priority=50)
def urgent(label: str) -> str:
    Record.objects.create(key=f"urgent:{label}")
    return label


@task(unique=True)
def rebuild_index(name: str) -> str:
    Record.objects.create(key=f"index:{name}")
    return name


@task
def fan_out(count: int) -> int:
    """Enqueue ``count`` jobs of ``urgent``, which run after this one."""
    with transaction.atomic():
        for i in range(count):
            urgent.enqueue(f"child-{i}")
    Record.objects.create(key="fan_out:done")
    return count


@task
def broken_sql() -> None:
    """Write a row, then fail with a database error (which, on PostgreSQL,
    aborts the transaction it happens in)."""
    from django.db import connection

    Record.objects.create(key="before the error")
    with connection.cursor() as cursor:
        cursor.execute("SELECT no_such_column FROM no_such_table")


@task
def returns_a_set() -> set:
    return {1, 2}


@task
def returns_a_nul() -> str:
    return "before\x00after"
