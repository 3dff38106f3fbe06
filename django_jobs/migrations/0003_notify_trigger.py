"""On PostgreSQL, a job that becomes ready wakes idle workers at once.

Statement-level triggers send ``NOTIFY django_jobs_job, '<queue>'`` for every
queue that received ready jobs, inside the writing transaction: workers hear
of a job when, and only if, it commits. Other databases rely on polling.
"""

from django.db import migrations

CHANNEL = "django_jobs_job"

# Inserts notify once per statement and queue, so a bulk enqueue sends one
# notification per queue. Updates notify per row, but only for rows that
# become ready (kick, retry, release): the WHEN clause keeps claims and
# completions from calling the function at all.
CREATE = f"""
CREATE OR REPLACE FUNCTION django_jobs_notify_inserted() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', queue)
    FROM (SELECT DISTINCT queue FROM new_jobs WHERE state = 'ready') AS ready;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION django_jobs_notify_ready() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', NEW.queue);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER django_jobs_notify_insert
    AFTER INSERT ON django_jobs_job REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION django_jobs_notify_inserted();

CREATE TRIGGER django_jobs_notify_update
    AFTER UPDATE ON django_jobs_job FOR EACH ROW
    WHEN (NEW.state = 'ready' AND (OLD.state <> 'ready' OR NEW.run_at < OLD.run_at))
    EXECUTE FUNCTION django_jobs_notify_ready();
"""

DROP = """
DROP TRIGGER IF EXISTS django_jobs_notify_update ON django_jobs_job;
DROP TRIGGER IF EXISTS django_jobs_notify_insert ON django_jobs_job;
DROP FUNCTION IF EXISTS django_jobs_notify_ready();
DROP FUNCTION IF EXISTS django_jobs_notify_inserted();
"""


def run_on_postgresql(sql):
    def operation(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return operation


class Migration(migrations.Migration):
    dependencies = [("django_jobs", "0002_worker")]

    operations = [
        migrations.RunPython(run_on_postgresql(CREATE), run_on_postgresql(DROP)),
    ]
