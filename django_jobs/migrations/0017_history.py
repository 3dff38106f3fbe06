"""The history's day tables (PostgreSQL; see django_jobs.queue.history).

Nothing to do forward: the pruner makes the day tables, and the first moves
take the done jobs already in the job table, a batch at a time, without a
lock on it. Backward, the done jobs come back into the job table and the
day tables go, so that an older release (or ``migrate django_jobs zero``,
which could not drop a table that has children) finds what it expects.
"""

from django.db import migrations

PARENT = "django_jobs_job"
PREFIX = "django_jobs_job_d"


def back_into_the_job_table(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c"
            " ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass"
            " AND c.relname LIKE %s ORDER BY c.relname",
            [PARENT, PREFIX.replace("_", r"\_") + "%"],
        )
        for (name,) in cursor.fetchall():
            cursor.execute(f'INSERT INTO "{PARENT}" SELECT * FROM ONLY "{name}"')
            cursor.execute(f'DROP TABLE "{name}"')


class Migration(migrations.Migration):
    dependencies = [("django_jobs", "0016_worker_skipped_queues")]

    operations = [
        migrations.RunPython(migrations.RunPython.noop, back_into_the_job_table),
    ]
