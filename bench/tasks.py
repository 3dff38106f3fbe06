"""Tasks the benchmarks enqueue."""

import time

from django_jobs.compat import task


@task
def noop(i: int = 0) -> None:
    return None


@task
def doze(i: int = 0, seconds: float = 0.1) -> None:
    """Sleep: long enough for the memory watch to sample the job."""
    time.sleep(seconds)


@task
def started_at() -> float:
    """Return the wall-clock time at which the job started (for latency)."""
    return time.time()


@task
def report_start(port: int) -> None:
    """Send the time the job started to the benchmark, over UDP on localhost."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(repr(time.time()).encode(), ("127.0.0.1", port))


@task
def select_one(i: int = 0) -> int:
    """A job that uses the ORM: one SELECT 1 on its own connection."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone()[0]


@task
def fan_out(count: int) -> int:
    """Enqueue ``count`` no-op jobs from a workflow's step (bench/workflows.py)."""
    noop.enqueue_many([((i,), {}) for i in range(count)])
    return count


@task
def nap(seconds: float) -> None:
    """Sleep: a job long enough for what waits for it to be enqueued first."""
    time.sleep(seconds)
