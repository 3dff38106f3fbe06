"""Tasks the benchmarks enqueue."""

import asyncio
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


@task
async def await_sleep(i: int = 0, seconds: float = 0.1) -> None:
    """Await I/O that takes ``seconds`` (bench/async_lane.py). Enqueued as is
    (queue "default": one process per job, --jobs-per-child) or with
    ``.using(queue_name=settings.LANE_QUEUE)`` for the async lane."""
    await asyncio.sleep(seconds)


@task
async def await_http(i: int, port: int) -> int:
    """GET from bench/async_lane.py's own HTTP server on 127.0.0.1 (which
    answers after a delay), over asyncio streams; the response's size."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /slow HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        response = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    if not response.startswith(b"HTTP/1.0 200 "):
        raise RuntimeError(f"unexpected response {response[:80]!r}")
    return len(response)


@task
async def await_and_write(i: int = 0, seconds: float = 0.1) -> None:
    """Await, then write one row through the async ORM (a demo Signup): on
    SQLite the jobs' writes take its one write lock in turn."""
    from testproject.demo.models import Signup

    await asyncio.sleep(seconds)
    await Signup.objects.acreate(email=f"lane-{i}@example.com")
