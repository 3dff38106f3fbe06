"""Wake-ups skip a worker whose LISTEN session is gone (PostgreSQL).

A worker that dies while its host lives (SIGKILL, the OOM killer, a crash)
loses its database sessions at once: the kernel closes its sockets and the
server's backends exit. Each worker now records its listener's session in
its row (``listener_pid``, ``listener_started_at``: written when the
listener connects), and ``django_jobs_wake`` passes over a worker whose
session has ended, instead of notifying it until the live workers'
heartbeats take its room (two heartbeats, see django_jobs.worker.fleet).
See django_jobs.queue.wake.
"""

from django.db import migrations, models

SHARED_CHANNEL = "django_jobs_job"

# A worker's session is looked up by its pid only for the candidates the
# loop reaches (one or two per job), not for every row with room. A session
# of another role shows its pid but not its backend_start (NULL) unless the
# enqueuing role may read its statistics (pg_read_all_stats); the pid alone
# then decides: a pid the server reused for another session keeps the
# worker woken, as before, until the heartbeats take its room.
CREATE = f"""
CREATE OR REPLACE FUNCTION django_jobs_wake(b text, q text, jobs integer)
RETURNS integer AS $$
DECLARE
    target record;
    woken integer := 0;
BEGIN
    FOR target IN
        SELECT id, room, listener_pid, listener_started_at FROM django_jobs_worker
        WHERE backend = b AND room > 0
          AND (jsonb_array_length(queues) = 0 OR queues ? q)
        ORDER BY random()
    LOOP
        CONTINUE WHEN target.listener_pid IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM pg_stat_get_activity(target.listener_pid) AS session
            WHERE coalesce(session.backend_start = target.listener_started_at, true)
        );
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

# Back to 0010's function, which reads neither column.
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
        migrations.AddField(
            model_name="worker",
            name="listener_started_at",
            field=models.DateTimeField(
                blank=True, null=True, verbose_name="listener's session start"
            ),
        ),
        migrations.RunPython(run_on_postgresql(CREATE), run_on_postgresql(RESTORE)),
    ]
