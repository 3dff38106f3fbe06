"""Limits per key (issue 22): a job's ``limit_key``, a queue's limits per key,
and the table of keys (QueueKey) that the keyed claim serves in turn.

The new column has a constant default (no table rewrite on PostgreSQL); the
new indexes are partial on keyed jobs, which do not exist yet. Triggers on
the job table keep each key's row up to date whenever one of its jobs
becomes ready (an enqueue, a retry, a rescue, a kick, a released claim, a
waiting job released, a row written by hand) and when one of its running
jobs stops running, on PostgreSQL and SQLite alike.

On SQLite, a migration that remakes the job table (most column changes do)
drops its triggers: such a migration must create them again after its
schema changes (tests/integration/test_key_turns.py fails if it does not).
"""

from django.db import migrations, models

# Upsert the key's row: its next ready job may be earlier now, and so its
# turn (see django_jobs.models.QueueKey). Nothing is written when the job is
# not earlier than the key's next one. Row triggers with a WHEN clause: jobs
# without a key never call them.
READY_UPSERT = """
INSERT INTO django_jobs_queuekey
    (backend, queue, "key", next_at, due_at, window_count)
VALUES (NEW.backend, NEW.queue, NEW.limit_key, NEW.run_at, NEW.run_at, 0)
ON CONFLICT (backend, queue, "key") DO UPDATE SET
    next_at = {least}(COALESCE(django_jobs_queuekey.next_at, excluded.next_at), excluded.next_at),
    due_at = {greatest}(
        {least}(COALESCE(django_jobs_queuekey.next_at, excluded.next_at), excluded.next_at),
        COALESCE(django_jobs_queuekey.served_at, excluded.next_at),
        COALESCE(django_jobs_queuekey.held_until, excluded.next_at),
        COALESCE(django_jobs_queuekey.parked_until, excluded.next_at))
WHERE django_jobs_queuekey.next_at IS NULL
    OR excluded.next_at < django_jobs_queuekey.next_at
"""
# A running job of a key stopped: if the key was parked at its concurrency,
# its turn comes back (where it was when it was parked). Written whether or
# not the key is parked, so that it waits for a claim that holds the key's
# row and may be parking it (see django_jobs.queue.keys), then sees its work.
FREED_UPDATE = """
UPDATE django_jobs_queuekey SET parked_until = NULL,
    due_at = CASE WHEN parked_until IS NULL THEN due_at
        WHEN next_at IS NULL THEN NULL ELSE {greatest}(next_at,
        COALESCE(served_at, next_at), COALESCE(held_until, next_at)) END
WHERE backend = OLD.backend AND queue = OLD.queue AND "key" = OLD.limit_key
"""
BECOMES_READY = (
    "NEW.state = 'ready' AND NEW.limit_key <> '' AND (OLD.state <> 'ready'"
    " OR NEW.run_at < OLD.run_at OR NEW.queue <> OLD.queue"
    " OR NEW.limit_key <> OLD.limit_key)"
)
STOPS_RUNNING = (
    "OLD.state = 'reserved' AND NEW.state <> 'reserved' AND OLD.limit_key <> ''"
)
TRIGGERS = ("django_jobs_key_insert", "django_jobs_key_update", "django_jobs_key_freed")

POSTGRESQL = f"""
CREATE OR REPLACE FUNCTION django_jobs_key_ready() RETURNS trigger AS $$
BEGIN
    {READY_UPSERT.format(least="LEAST", greatest="GREATEST")};
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION django_jobs_key_freed() RETURNS trigger AS $$
BEGIN
    {FREED_UPDATE.format(greatest="GREATEST")};
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER django_jobs_key_insert AFTER INSERT ON django_jobs_job
    FOR EACH ROW WHEN (NEW.state = 'ready' AND NEW.limit_key <> '')
    EXECUTE FUNCTION django_jobs_key_ready();
CREATE TRIGGER django_jobs_key_update
    AFTER UPDATE OF state, run_at, queue, limit_key ON django_jobs_job
    FOR EACH ROW WHEN ({BECOMES_READY})
    EXECUTE FUNCTION django_jobs_key_ready();
CREATE TRIGGER django_jobs_key_freed AFTER UPDATE OF state ON django_jobs_job
    FOR EACH ROW WHEN ({STOPS_RUNNING})
    EXECUTE FUNCTION django_jobs_key_freed();
"""
POSTGRESQL_DROP = "".join(
    f"DROP TRIGGER IF EXISTS {name} ON django_jobs_job;\n" for name in TRIGGERS
) + (
    "DROP FUNCTION IF EXISTS django_jobs_key_ready();\n"
    "DROP FUNCTION IF EXISTS django_jobs_key_freed();\n"
)

# SQLite has no LEAST/GREATEST: its min() and max() of several values are
# the same (NULLs are kept out by the COALESCEs). One statement per trigger.
_SQLITE_READY = READY_UPSERT.format(least="min", greatest="max")
SQLITE = [
    "CREATE TRIGGER django_jobs_key_insert AFTER INSERT ON django_jobs_job"
    f" WHEN NEW.state = 'ready' AND NEW.limit_key <> ''"
    f" BEGIN {_SQLITE_READY}; END",
    "CREATE TRIGGER django_jobs_key_update"
    " AFTER UPDATE OF state, run_at, queue, limit_key ON django_jobs_job"
    f" WHEN {BECOMES_READY} BEGIN {_SQLITE_READY}; END",
    "CREATE TRIGGER django_jobs_key_freed AFTER UPDATE OF state ON django_jobs_job"
    f" WHEN {STOPS_RUNNING} BEGIN {FREED_UPDATE.format(greatest='max')}; END",
]
SQLITE_DROP = [f"DROP TRIGGER IF EXISTS {name}" for name in TRIGGERS]


def run(postgresql, sqlite):
    def operation(apps, schema_editor):
        vendor = schema_editor.connection.vendor
        statements = {"postgresql": [postgresql], "sqlite": sqlite}.get(vendor, [])
        for statement in statements:
            schema_editor.execute(statement)

    return operation


class Migration(migrations.Migration):
    dependencies = [
        ("django_jobs", "0013_job_resources"),
    ]

    operations = [
        migrations.CreateModel(
            name="QueueKey",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True,
                        primary_key=True,
                        serialize=False,
                        verbose_name="ID",
                    ),
                ),
                ("backend", models.CharField(max_length=100, verbose_name="backend")),
                ("queue", models.CharField(max_length=100, verbose_name="queue")),
                ("key", models.CharField(max_length=255, verbose_name="key")),
                (
                    "next_at",
                    models.DateTimeField(
                        blank=True, null=True, verbose_name="next job at"
                    ),
                ),
                (
                    "served_at",
                    models.DateTimeField(
                        blank=True, null=True, verbose_name="served at"
                    ),
                ),
                (
                    "held_until",
                    models.DateTimeField(
                        blank=True, null=True, verbose_name="held until"
                    ),
                ),
                (
                    "parked_until",
                    models.DateTimeField(
                        blank=True, null=True, verbose_name="parked until"
                    ),
                ),
                (
                    "due_at",
                    models.DateTimeField(blank=True, null=True, verbose_name="turn at"),
                ),
                (
                    "window_start",
                    models.DateTimeField(
                        blank=True, null=True, verbose_name="window start"
                    ),
                ),
                (
                    "window_count",
                    models.PositiveIntegerField(
                        default=0, verbose_name="starts in window"
                    ),
                ),
            ],
            options={
                "verbose_name": "queue key",
                "verbose_name_plural": "queue keys",
            },
        ),
        migrations.AddField(
            model_name="job",
            name="limit_key",
            field=models.CharField(
                blank=True,
                db_default="",
                default="",
                max_length=255,
                verbose_name="limit key",
            ),
        ),
        migrations.AddField(
            model_name="queue",
            name="key_concurrency",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="Jobs of one key running at once, across all workers.",
                null=True,
                verbose_name="concurrency per key",
            ),
        ),
        migrations.AddField(
            model_name="queue",
            name="key_rate_limit",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="Jobs of one key started per window, at most.",
                null=True,
                verbose_name="starts per key",
            ),
        ),
        migrations.AddField(
            model_name="queue",
            name="key_rate_period",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="The rate window: 1, 60, 3600 or 86400 seconds.",
                null=True,
                verbose_name="window (seconds)",
            ),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                condition=models.Q(
                    ("state", "reserved"), models.Q(("limit_key", ""), _negated=True)
                ),
                fields=["queue", "limit_key"],
                name="django_jobs_job_key_running",
            ),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                condition=models.Q(
                    ("state", "ready"), models.Q(("limit_key", ""), _negated=True)
                ),
                fields=["queue", "limit_key", "-priority", "run_at", "id"],
                name="django_jobs_job_key_claim",
            ),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                condition=models.Q(
                    ("state", "ready"), models.Q(("limit_key", ""), _negated=True)
                ),
                fields=["queue", "limit_key", "run_at"],
                name="django_jobs_job_key_next",
            ),
        ),
        migrations.AddIndex(
            model_name="queuekey",
            index=models.Index(
                condition=models.Q(("due_at__isnull", False)),
                fields=["backend", "queue", "due_at", "key"],
                name="django_jobs_queuekey_turn",
            ),
        ),
        migrations.AddConstraint(
            model_name="queuekey",
            constraint=models.UniqueConstraint(
                fields=("backend", "queue", "key"), name="django_jobs_queuekey_unique"
            ),
        ),
        migrations.RunPython(
            run(POSTGRESQL, SQLITE), run(POSTGRESQL_DROP, SQLITE_DROP)
        ),
    ]
