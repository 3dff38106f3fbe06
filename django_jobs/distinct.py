"""The distinct queues and tasks in the job table, without reading every row.

``SELECT DISTINCT queue`` reads the whole table (PostgreSQL has no skip scan
for it), which a million jobs make slow. A recursive query that asks the
index for the next value after the previous one ("loose index scan") costs
one index probe per distinct value instead; there are few of them.
"""

from __future__ import annotations

from django.db import connections, router

from .models import Job

#: More distinct values than this is not a list a person can use.
LIMIT = 200


def distinct_values(
    column: str,
    limit: int = LIMIT,
    *,
    backend: str | None = None,
    using: str | None = None,
) -> list[str]:
    """The sorted distinct values of an indexed ``Job`` column (queue, task_path),
    of every job or of ``backend``'s."""
    connection = connections[using or router.db_for_read(Job)]
    qn = connection.ops.quote_name
    table, col = qn(Job._meta.db_table), qn(Job._meta.get_field(column).column)
    where = "1 = 1" if backend is None else f"{qn('backend')} = %s"
    sql = (
        f"WITH RECURSIVE walk(value) AS ("
        f" SELECT (SELECT {col} FROM {table} WHERE {where} ORDER BY {col} LIMIT 1)"
        f" UNION ALL"
        f" SELECT (SELECT {col} FROM {table} WHERE {col} > walk.value AND {where}"
        f" ORDER BY {col} LIMIT 1) FROM walk WHERE walk.value IS NOT NULL"
        f") SELECT value FROM walk WHERE value IS NOT NULL LIMIT %s"
    )
    params = [limit] if backend is None else [backend, backend, limit]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]
