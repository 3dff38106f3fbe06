"""Benchmark tasks in a module that no app's ``tasks.py`` imports.

Many projects keep tasks in ``jobs.py``, ``emails.py`` or ``services/...``:
a worker's fork server does not import such a module at start, only when the
first job of it comes (see django_jobs.worker.preload).
"""

from django.db import connection

from django_jobs.compat import task


@task
def noop(i: int = 0) -> None:
    return None


@task
def select_one(i: int = 0) -> int:
    """A job that uses the ORM: one SELECT 1 on its own connection."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone()[0]


@task
def report_start(port: int) -> None:
    """Send the time the job started to the benchmark, over UDP on localhost."""
    import socket
    import time

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(repr(time.time()).encode(), ("127.0.0.1", port))
