"""Model fields that read any row, whatever was written into it by hand.

A job row is usually written by django-jobs, but an operator can write one
with SQL: a ``run_at`` of ``'-infinity'`` (PostgreSQL accepts it; Python has
no such datetime), arguments nested thousands deep (Python's JSON decoder
gives up), a time that is not a time (SQLite stores any text). With Django's
own fields, one such row makes every query that loads it fail: the claim of
every job beside it, the rescuer's pass over the whole backend, the console's
page. These fields turn what cannot be read into a value the code can look
at (``None`` for a time, an ``Unreadable`` for JSON), so that one bad row is
dealt with on its own (the claim buries it, naming the field) and every
other job keeps flowing.
"""

from __future__ import annotations

from typing import Any

from django.db import models


class Unreadable(str):
    """A JSON column whose stored text Python cannot decode, and why.

    A ``str`` so that the console shows it as it shows any other text.
    """

    reason: str

    def __new__(cls, reason: str, text: str = "") -> Unreadable:
        excerpt = text if len(text) <= 60 else f"{text[:57]}..."
        value = super().__new__(cls, f"<unreadable: {reason}> {excerpt}".rstrip())
        value.reason = reason
        return value


def readable_time_sql(vendor: str, sql: str) -> tuple[str, int]:
    """SQL that selects the timestamp ``sql`` only where Python can read it.

    PostgreSQL stores ``infinity`` and ``-infinity``, which Python's datetime
    cannot hold; SQLite stores any text, and Django's reader fails on text
    that is not a date; MariaDB and MySQL store zero dates (``'0000-00-00'``,
    whenever ``sql_mode`` lacks ``NO_ZERO_DATE``), impossible ones
    (``'2024-02-30'``, under ``ALLOW_INVALID_DATES``) and the year 0, none
    of which Python can hold. All read as NULL instead. Returns the SQL and
    how many times it repeats ``sql`` (its parameters repeat as often).
    """
    if vendor == "postgresql":
        return f"CASE WHEN isfinite({sql}) THEN {sql} END", 2
    if vendor == "sqlite":
        # date() normalises impossible dates (Feb 30 -> Mar 2) and returns
        # NULL for text that is no date: either way it differs from the text.
        return f"CASE WHEN date({sql}) = substr({sql}, 1, 10) THEN {sql} END", 3
    if vendor == "mysql":
        # Date arithmetic on a zero, impossible or year-0 date is NULL (with a
        # warning, never an error in a SELECT, whatever the sql_mode).
        return f"CASE WHEN {sql} + INTERVAL 0 DAY IS NOT NULL THEN {sql} END", 2
    return sql, 1


class ReadableDateTimeField(models.DateTimeField):
    """A DateTimeField whose unreadable values (see above) read as None."""

    def select_format(self, compiler, sql: str, params: Any) -> tuple[str, Any]:
        sql, params = super().select_format(compiler, sql, params)
        wrapped, repeats = readable_time_sql(compiler.connection.vendor, sql)
        return wrapped, tuple(params) * repeats


class ReadableJSONField(models.JSONField):
    """A JSONField whose undecodable values read as ``Unreadable``."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        try:
            return super().from_db_value(value, expression, connection)
        except (RecursionError, ValueError, TypeError) as exc:
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:100]}"
            return Unreadable(reason, value if isinstance(value, str) else "")
