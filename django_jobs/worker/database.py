"""How the supervisor uses its database connection.

On PostgreSQL the claim must walk the claim index in order and stop after a
few rows. Right after a bulk enqueue, before autovacuum has analysed the
table, the planner can believe there are only a handful of ready rows and
choose a bitmap scan and a sort of all of them instead: a claim then costs
milliseconds per thousand ready jobs, exactly when the backlog is largest.
Every query the supervisor runs is meant to use an index, so its own
connection (and only it: not the children's, not the web's) disables the
plans that do not.
"""

from __future__ import annotations

from django.db import connections
from django.db.backends.signals import connection_created

PLANNER_SETTINGS = ("SET enable_bitmapscan = off", "SET enable_seqscan = off")


def configure_supervisor_connection(db: str) -> None:
    """Apply the planner settings to ``db``'s connections in this process."""

    def configure(sender, connection, **kwargs) -> None:
        if connection.alias == db and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                for statement in PLANNER_SETTINGS:
                    cursor.execute(statement)

    connection_created.connect(
        configure, weak=False, dispatch_uid="django_jobs_planner"
    )
    connection = connections[db]
    if connection.connection is not None:
        configure(None, connection)
