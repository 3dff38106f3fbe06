"""Wake-ups skip a worker for the queues it leaves alone (PostgreSQL).

A worker started without ``--queue`` serves every queue but those of the
async lane (``OPTIONS['ASYNC_QUEUES']``), which only a worker naming them
runs. Its row now says which (``skipped_queues``), and ``django_jobs_wake``
passes over it for a job of those queues: otherwise a new lane job could
spend its wake-up on a worker that will not claim it, and wait for the lane
worker's next poll. See django_jobs.queue.wake.
"""

from django.db import migrations, models

SHARED_CHANNEL = "django_jobs_job"
#: queue.wake.LISTENER_LOCK when this migration was written ("djob").
LISTENER_LOCK = 0x646A6F62


def wake_function(skips: bool) -> str:
    """django_jobs_wake as 0011 made it, and with ``skips`` the test of the
    worker's skipped queues."""
    skipping = "AND NOT (skipped_queues ? q)" if skips else ""
    return f"""
CREATE OR REPLACE FUNCTION django_jobs_wake(b text, q text, jobs integer)
RETURNS integer AS $$
DECLARE
    target record;
    woken integer := 0;
BEGIN
    FOR target IN
        SELECT id, room, listener_pid FROM django_jobs_worker
        WHERE backend = b AND room > 0
          AND (jsonb_array_length(queues) = 0 OR queues ? q)
          {skipping}
        ORDER BY random()
    LOOP
        CONTINUE WHEN target.listener_pid IS NOT NULL AND
            pg_try_advisory_xact_lock_shared({LISTENER_LOCK}, target.listener_pid);
        PERFORM pg_notify('django_jobs_' || substr(md5(target.id), 1, 16), q);
        woken := woken + 1;
        jobs := jobs - target.room;
        EXIT WHEN jobs <= 0;
    END LOOP;
    IF EXISTS (SELECT 1 FROM django_jobs_worker WHERE backend = b AND room IS NULL)
    THEN
        PERFORM pg_notify('{SHARED_CHANNEL}', q);
    END IF;
    RETURN woken;
END;
$$ LANGUAGE plpgsql;
"""


def run_on_postgresql(sql):
    def operation(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return operation


class Migration(migrations.Migration):
    dependencies = [("django_jobs", "0015_worker_scaling")]

    operations = [
        migrations.AddField(
            model_name="worker",
            name="skipped_queues",
            field=models.JSONField(
                blank=True, db_default=[], default=list, verbose_name="queues skipped"
            ),
        ),
        migrations.RunPython(
            run_on_postgresql(wake_function(skips=True)),
            run_on_postgresql(wake_function(skips=False)),
        ),
    ]
