"""MariaDB and MySQL: what PostgreSQL's partial indexes and constraints do.

Neither server has indexes with a condition: Django creates the model's
partial indexes there as plain indexes on the same columns, and leaves the
two partial unique constraints out. On ``mysql`` only, this migration

- makes every identifier column (queue and task names, keys, states,
  tokens) ``utf8mb4`` with a binary collation, so that four-byte characters
  fit and ``"Emails"`` is another queue than ``"emails"``, as elsewhere,
  whatever the database's default character set and collation;
- rebuilds the indexes whose condition was a state with the state as their
  first column, so that a claim reads ready jobs only, as on PostgreSQL;
- keeps one unfinished job per unique key with a unique index on a virtual
  column that holds the key while the job is unfinished and NULL after (a
  unique index allows any number of NULLs), and one job per schedule tick
  with a unique index on the tick (NULL for other jobs).

Nothing changes on PostgreSQL and SQLite.
"""

from django.db import migrations

#: Indexes Django made without their condition, rebuilt with the state first.
STATE_FIRST = {
    "django_jobs_job": {
        "django_jobs_job_claim": "state, priority DESC, run_at, id",
        "django_jobs_job_queue_claim": "state, queue, priority DESC, run_at, id",
        "django_jobs_job_reserved": "state, reserved_until",
        "django_jobs_job_waiting": "state, backend",
        "django_jobs_job_key_running": "state, queue, limit_key",
        "django_jobs_job_key_claim": (
            "state, queue, limit_key, priority DESC, run_at, id"
        ),
        "django_jobs_job_key_next": "state, queue, limit_key, run_at",
    },
    "django_jobs_workflow": {"django_jobs_workflow_due": "state, deadline"},
}

UNIQUE_LIVE = (
    "ALTER TABLE django_jobs_job ADD COLUMN unique_live varchar(255)"
    " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin GENERATED ALWAYS AS ("
    "CASE WHEN state IN ('waiting', 'ready', 'reserved') AND unique_key <> ''"
    " THEN unique_key END) VIRTUAL"
)
UNIQUE_INDEXES = [
    "CREATE UNIQUE INDEX django_jobs_job_unique_while_waiting"
    " ON django_jobs_job (backend, unique_live)",
    "CREATE UNIQUE INDEX django_jobs_job_one_per_tick"
    " ON django_jobs_job (schedule_id, scheduled_for)",
]


def identifier_columns(cursor, table: str) -> list[str]:
    """``MODIFY`` clauses that make ``table``'s varchar columns utf8mb4 with
    a binary collation, each column otherwise as it was."""
    cursor.execute(
        "SELECT column_name, column_type, is_nullable, column_default"
        " FROM information_schema.columns WHERE table_schema = DATABASE()"
        " AND table_name = %s AND data_type = 'varchar'"
        " AND (collation_name IS NULL OR collation_name <> 'utf8mb4_bin')"
        " AND (generation_expression IS NULL OR generation_expression = '')",
        [table],
    )
    clauses = []
    for name, kind, nullable, default in cursor.fetchall():
        clause = f"MODIFY `{name}` {kind} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        clause += " NULL" if nullable == "YES" else " NOT NULL"
        if default is not None:
            clause += f" DEFAULT {default}"
        clauses.append(clause)
    return clauses


def forward(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "mysql":
        return
    tables = [
        model._meta.db_table
        for model in apps.get_app_config("django_jobs").get_models()
        if model._meta.managed
    ]
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"ALTER TABLE `{table}` DEFAULT CHARACTER SET utf8mb4")
            if clauses := identifier_columns(cursor, table):
                cursor.execute(f"ALTER TABLE `{table}` {', '.join(clauses)}")
        for table, indexes in STATE_FIRST.items():
            for name, columns in indexes.items():
                cursor.execute(
                    f"ALTER TABLE `{table}` DROP INDEX `{name}`,"
                    f" ADD INDEX `{name}` ({columns})"
                )
        cursor.execute(UNIQUE_LIVE)
        for statement in UNIQUE_INDEXES:
            cursor.execute(statement)


def backward(apps, schema_editor):
    """Drop what ``forward`` added (the indexes first: MariaDB keeps a column
    that an index still names); the rebuilt indexes and collations stay,
    as harmless as Django's own."""
    if schema_editor.connection.vendor != "mysql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT index_name FROM information_schema.statistics"
            " WHERE table_schema = DATABASE() AND table_name = 'django_jobs_job'"
        )
        indexes = {name for (name,) in cursor.fetchall()}
        for name in (
            "django_jobs_job_unique_while_waiting",
            "django_jobs_job_one_per_tick",
        ):
            if name in indexes:
                cursor.execute(f"DROP INDEX {name} ON django_jobs_job")
        cursor.execute(
            "SELECT count(*) FROM information_schema.columns"
            " WHERE table_schema = DATABASE() AND table_name = 'django_jobs_job'"
            " AND column_name = 'unique_live'"
        )
        if cursor.fetchone()[0]:
            cursor.execute("ALTER TABLE django_jobs_job DROP COLUMN unique_live")


class Migration(migrations.Migration):
    dependencies = [("django_jobs", "0019_queue_claim")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
