"""The columns a hot statement returns, and their values read without a queryset.

The claim runs several times a second in every worker, and the completion
once for every job: their rows are turned into Python values (and ``Job``
objects) as a queryset would turn them, without building a query each time.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from django.db.models import Field

from ..fields import ReadableDateTimeField, Unreadable, readable_time_sql
from ..models import Job


@functools.cache
def fields_named(names: tuple[str, ...]) -> tuple[Field, ...]:
    """The job's fields of these names: one tuple per list of names, so that
    ``converted`` finds their converters at once."""
    return tuple(Job._meta.get_field(name) for name in names)


def converted(connection, fields: Sequence[Field], rows: list[tuple]) -> list[list]:
    """Rows of ``fields``' columns as Python values, as a queryset would give
    them, without building a query each time (the claim runs several times a
    second in every worker). A value that cannot be converted becomes an
    ``Unreadable``: one bad value must not cost the rest of the rows.
    """
    converters = _converters(connection, fields)
    result = []
    for row in rows:
        values = list(row)
        for position, functions, column in converters:
            try:
                for function in functions:
                    values[position] = function(values[position], column, connection)
            except Exception as exc:
                values[position] = Unreadable(f"{type(exc).__name__}: {exc}"[:200])
        result.append(values)
    return result


_found: dict[tuple[str, int], tuple[Sequence[Field], list[tuple[int, list, Any]]]] = {}


def _converters(connection, fields: Sequence[Field]) -> list[tuple[int, list, Any]]:
    """Each field's converters, looked up once per database alias and list of
    fields (callers pass the same list each time: it is keyed by identity, and
    kept, so that its identity is never reused)."""
    key = (connection.alias, id(fields))
    if key in _found:
        return _found[key][1]
    table = Job._meta.db_table
    found = []
    for position, field in enumerate(fields):
        column = field.get_col(table)
        functions = connection.ops.get_db_converters(column)
        functions += column.get_db_converters(connection)
        if functions:
            found.append((position, functions, column))
    _found[key] = (fields, found)
    return found


def jobs_from_rows(connection, rows: list[tuple]) -> list[Job]:
    """Job instances from rows of every concrete column, in field order."""
    fields = Job._meta.concrete_fields
    names = [field.attname for field in fields]
    return [
        Job.from_db(connection.alias, names, values)
        for values in converted(connection, fields, rows)
    ]


def returning(connection, fields: Sequence[Field], *, qualified: bool = False) -> str:
    """A RETURNING list of ``fields``' columns, as a statement should return
    them: timestamps that Python cannot read come back as NULL (see
    ``django_jobs.fields``), so that one bad row cannot fail a whole claim."""
    qn = connection.ops.quote_name
    prefix = f"{qn(Job._meta.db_table)}." if qualified else ""
    columns = []
    for field in fields:
        column = prefix + qn(field.column)
        if isinstance(field, ReadableDateTimeField):
            column = readable_time_sql(connection.vendor, column)[0]
        columns.append(column)
    return ", ".join(columns)
