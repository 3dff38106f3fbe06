"""Tasks used by the tests. Module level, as workers import them by path."""

import asyncio

from django_jobs.compat import task

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


@task
def record_pid(key: str) -> int:
    """Record which process ran the job; used to count runs and find children."""
    import os

    Record.objects.create(key=key, pid=os.getpid())
    return os.getpid()


@task(takes_context=True)
def hang_first_attempt(context, key: str, seconds: float = 60) -> str:
    """Record, then hang on the first attempt; finish at once on later ones."""
    import os
    import time

    Record.objects.create(key=key, job_id=context.task_result.id, pid=os.getpid())
    if context.attempt == 1:
        time.sleep(seconds)
    return f"attempt {context.attempt}"


@task
def sleep(seconds: float, key: str = "") -> float:
    import os
    import time

    if key:
        Record.objects.create(key=key, pid=os.getpid())
    time.sleep(seconds)
    return seconds


@task
def hang_with_grandchild(key: str) -> None:
    """Start a grandchild in the job's process group, then hang."""
    import os
    import subprocess
    import time

    grandchild = subprocess.Popen(["sleep", "300"])
    Record.objects.create(key=key, pid=os.getpid(), job_id=str(grandchild.pid))
    time.sleep(300)


@task
def exit_with(code: int) -> None:
    import os

    os._exit(code)


@task
def kill_self(signum: int = 9) -> None:
    import os

    os.kill(os.getpid(), signum)


@task
def raise_system_exit() -> None:
    raise SystemExit(4)


@task
def unserialisable_return() -> object:
    return object()


@task(takes_context=True)
def touch_and_sleep(context, steps: int, seconds: float, then_hang: float = 0) -> int:
    """Touch the reservation between steps: lives past its ttr while it does."""
    import time

    for _ in range(steps):
        time.sleep(seconds)
        context.touch()
    time.sleep(then_hang)  # stops touching: killed once its ttr runs out
    return steps


@task(takes_context=True)
def touch_until_lost(context, key: str) -> str:
    """Touch every 0.1 s until the claim is gone; record what the task was told."""
    import time

    from django_jobs.exceptions import ClaimLost

    for _ in range(300):
        time.sleep(0.1)
        try:
            context.touch()
        except ClaimLost as exc:
            name = type(exc).__name__
            Record.objects.create(key=f"{key}:{name}:{exc.operation}:{exc.job_id}")
            return "stopped"
    return "never lost"


@task
def overlap(key: str, seconds: float) -> None:
    """Record when the job starts and ends, to measure how many run at once."""
    import time

    Record.objects.create(key=f"{key}:start")
    time.sleep(seconds)
    Record.objects.create(key=f"{key}:end")


@task(unique=True)
def unique_report(day: str) -> str:
    return day


@task(queue_name="limited")
def limited_overlap(key: str, seconds: float) -> None:
    """Record start and end, to check a queue's concurrency limit."""
    import time

    Record.objects.create(key=f"{key}:start")
    time.sleep(seconds)
    Record.objects.create(key=f"{key}:end")


@task
def tick(name: str) -> str:
    return name


@task(takes_context=True, max_attempts=3)
def five_steps(context, key: str, crash_at: int) -> list:
    """Checkpoint after each step; the first attempt dies at step crash_at."""
    import os

    start = (context.last_checkpoint or {}).get("next", 1)
    for step in range(start, 6):
        if context.attempt == 1 and step == crash_at:
            os._exit(9)
        Record.objects.create(key=f"{key}:{context.attempt}:{step}")
        context.checkpoint({"next": step + 1})
    return [start, context.attempt]


@task(takes_context=True)
def report_progress(context, seconds: float) -> None:
    import time

    context.progress(1, 4, "warming up")
    time.sleep(0.7)
    context.progress(3, 4, "almost there")
    time.sleep(seconds)


@task(takes_context=True)
def chatty(context, lines: int) -> str:
    import logging
    import sys

    for i in range(lines):
        print(f"printed line {i}")
    print("to stderr", file=sys.stderr)
    logging.getLogger("tests.chatty").warning("a warning from job %s", context.job_id)
    return "ok"


@task
def spawn_children(count: int, fail: bool = False) -> int:
    from django.db import transaction

    with transaction.atomic():
        for i in range(count):
            add.enqueue(i, i)
        if fail:
            raise RuntimeError("the parent failed after enqueuing")
    return count


@task
def batch_done(
    batch_id: int, done: int, failed: int, job_ids: list, label: str
) -> dict:
    Record.objects.create(key=f"callback:{label}:{batch_id}")
    return {"done": done, "failed": failed, "jobs": len(job_ids), "label": label}


@task
def say(word: str) -> str:
    print(f"saying {word}")
    return word
