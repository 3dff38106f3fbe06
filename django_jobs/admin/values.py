"""The distinct queues and tasks in the job table, without reading every row.

``SELECT DISTINCT queue`` reads the whole table (PostgreSQL has no skip scan
for it), which a million jobs make slow. A recursive query that asks the
index for the next value after the previous one ("loose index scan") costs
one index probe per distinct value instead; there are few of them.
"""

from __future__ import annotations

from django.db import connections, router

from ..models import Job

#: More distinct values than this is not a filter list a person can use.
LIMIT = 200


def distinct_values(column: str, limit: int = LIMIT) -> list[str]:
    """The sorted distinct values of an indexed ``Job`` column (queue, task_path)."""
    db = router.db_for_read(Job)
    connection = connections[db]
    qn = connection.ops.quote_name
    table, col = qn(Job._meta.db_table), qn(Job._meta.get_field(column).column)
    sql = (
        f"WITH RECURSIVE walk(value) AS ("
        f" SELECT (SELECT {col} FROM {table} ORDER BY {col} LIMIT 1)"
        f" UNION ALL"
        f" SELECT (SELECT {col} FROM {table} WHERE {col} > walk.value"
        f" ORDER BY {col} LIMIT 1) FROM walk WHERE walk.value IS NOT NULL"
        f") SELECT value FROM walk WHERE value IS NOT NULL LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [limit])
        return [row[0] for row in cursor.fetchall()]


def request_values(request, column: str) -> list[str]:
    """``distinct_values(column)``, walked once per request.

    The task filter lists the task paths and a search matches against them:
    one page showing both walks the index once.
    """
    cache = request.__dict__.setdefault("_django_jobs_values", {})
    if column not in cache:
        cache[column] = distinct_values(column)
    return cache[column]
