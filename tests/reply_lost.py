"""Writes in doubt, for tests: committed, then answered with the error of a
connection that broke before the reply came (as after a failover whose
commit reached the standby)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import OperationalError, connections


def drop_connection(alias: str = "default") -> None:
    """Raise what a connection that broke after its last commit raises.

    On PostgreSQL the server ends the connection (``pg_terminate_backend``,
    waiting for the end) and the next statement meets the real error; SQLite
    has no server, so the error is raised as psycopg words it.
    """
    connection = connections[alias]
    if connection.vendor != "postgresql":
        raise OperationalError("server closed the connection unexpectedly")
    pid = connection.connection.info.backend_pid
    other = connections.create_connection(alias)
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])
    finally:
        other.close()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    raise AssertionError("the connection outlived its end")


class ReplyLost:
    """``function``, whose first call is made (and committed), then fails as
    if its reply had been lost; later calls go through."""

    def __init__(self, function: Callable[..., Any], alias: str = "default") -> None:
        self.function = function
        self.alias = alias
        self.calls = 0
        #: What the first call returned, before its reply was "lost".
        self.lost: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        result = self.function(*args, **kwargs)
        if self.calls == 1:
            self.lost = result
            drop_connection(self.alias)
        return result
