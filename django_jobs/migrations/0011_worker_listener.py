"""Wake-ups skip a worker whose LISTEN session has ended (PostgreSQL).

A worker that dies while its host lives (SIGKILL, the OOM killer, a crash)
loses its database sessions at once: the kernel closes its sockets and the
server's backends exit. Each worker's listener session now holds an
advisory lock keyed by its server pid, and records the pid in the worker's
row (``listener_pid``, written when the listener connects);
``django_jobs_wake`` passes over a worker whose lock nobody holds any more,
instead of notifying it until the live workers' heartbeats take its room
(two heartbeats, see django_jobs.worker.fleet). See django_jobs.queue.wake.
"""

from django.db import migrations, models

SHARED_CHANNEL = "django_jobs_job"
#: queue.wake.LISTENER_LOCK when this migration was written ("djob").
LISTENER_LOCK = 0x646A6F62

# The lock is tried only for the candidates the loop reaches (one or two per
# job), shared and without waiting: on a live listener it fails at once; on
# an ended one it is taken, until this transaction ends. A pid that the
# server gave to another worker's listener keeps a dead worker woken, as
# before this migration, until the heartbeats take its room.
CREATE = f"""
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

# Back to 0010's function, which reads no listener_pid.
RESTORE = f"""
CREATE OR REPLACE FUNCTION django_jobs_wake(b text, q text, jobs integer)
RETURNS integer AS $$
DECLARE
    target record;
    woken integer := 0;
BEGIN
    FOR target IN
        SELECT id, room FROM django_jobs_worker
        WHERE backend = b AND room > 0
          AND (jsonb_array_length(queues) = 0 OR queues ? q)
        ORDER BY random()
    LOOP
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
    dependencies = [
        ("django_jobs", "0010_fleet"),
    ]

    operations = [
        migrations.AddField(
            model_name="worker",
            name="listener_pid",
            field=models.PositiveIntegerField(
                blank=True, null=True, verbose_name="listener's server pid"
            ),
        ),
        migrations.RunPython(run_on_postgresql(CREATE), run_on_postgresql(RESTORE)),
    ]
