"""A fleet of workers: the duties' lease, each worker's room, targeted wakes.

On PostgreSQL a job that becomes ready no longer wakes every listening
worker (each of which ran a claim, and all but one found nothing): the
triggers call ``django_jobs_wake``, which notifies, on its own channel, just
enough workers with room to take the new jobs (``Worker.room``, kept by
their claims and heartbeats). Workers older than the room column (NULL)
still hear every job on the shared channel, so a rolling deploy loses no
wake-up. See django_jobs.queue.wake.
"""

import django.utils.timezone
from django.db import migrations, models

SHARED_CHANNEL = "django_jobs_job"

# A job whose run_at is still ahead wakes nobody: the worker that holds the
# lease wakes workers for it when it comes due. A second of slack keeps a
# web server's clock a little ahead of the database's from delaying jobs.
CREATE = f"""
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

CREATE OR REPLACE FUNCTION django_jobs_notify_inserted() RETURNS trigger AS $$
BEGIN
    PERFORM django_jobs_wake(backend, queue, count(*)::integer)
    FROM new_jobs
    WHERE state = 'ready' AND run_at <= clock_timestamp() + interval '1 second'
    GROUP BY backend, queue;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION django_jobs_notify_ready() RETURNS trigger AS $$
BEGIN
    IF NEW.run_at <= clock_timestamp() + interval '1 second' THEN
        PERFORM django_jobs_wake(NEW.backend, NEW.queue, 1);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
"""

# Back to 0003's functions: every ready job notifies the shared channel.
DROP = f"""
CREATE OR REPLACE FUNCTION django_jobs_notify_inserted() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('{SHARED_CHANNEL}', queue)
    FROM (SELECT DISTINCT queue FROM new_jobs WHERE state = 'ready') AS ready;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION django_jobs_notify_ready() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('{SHARED_CHANNEL}', NEW.queue);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

DROP FUNCTION IF EXISTS django_jobs_wake(text, text, integer);
"""


def run_on_postgresql(sql):
    def operation(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return operation


class Migration(migrations.Migration):
    dependencies = [
        ("django_jobs", "0009_readable_fields"),
    ]

    operations = [
        migrations.CreateModel(
            name="Lease",
            fields=[
                (
                    "name",
                    models.CharField(
                        max_length=100,
                        primary_key=True,
                        serialize=False,
                        verbose_name="backend",
                    ),
                ),
                (
                    "holder",
                    models.CharField(
                        blank=True, default="", max_length=64, verbose_name="worker"
                    ),
                ),
                (
                    "expires_at",
                    models.DateTimeField(
                        default=django.utils.timezone.now, verbose_name="expires at"
                    ),
                ),
            ],
            options={
                "verbose_name": "lease",
                "verbose_name_plural": "leases",
            },
        ),
        migrations.AddField(
            model_name="worker",
            name="room",
            field=models.PositiveIntegerField(
                blank=True, null=True, verbose_name="room"
            ),
        ),
        migrations.RunPython(run_on_postgresql(CREATE), run_on_postgresql(DROP)),
    ]
