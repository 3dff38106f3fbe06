"""MariaDB and MySQL: the triggers that keep each key's row current.

Migration 0014 creates them on PostgreSQL and SQLite only (its forms need a
trigger's ``WHEN`` clause, ``UPDATE OF`` columns and ``ON CONFLICT``). Here
the same three triggers are written as MariaDB 10.6 and MySQL 8 accept
them: the ``WHEN`` becomes an ``IF`` in the body (both servers allow several
triggers per table and event, fired in creation order), ``ON CONFLICT ...
WHERE`` becomes ``ON DUPLICATE KEY UPDATE`` whose assignments keep the old
values unless the job is earlier than the key's next one. MySQL evaluates
the assignments of one UPDATE left to right, each seeing the ones before:
``due_at`` is written before the columns it is computed from.

Nothing changes on PostgreSQL and SQLite. On MySQL 8 with binary logging,
creating triggers takes the SUPER privilege or
``log_bin_trust_function_creators`` (docs/databases.rst).
"""

from django.db import migrations

# The job became ready (or earlier, or moved to another queue or key): its
# key's next ready job may be earlier now, and so its turn.
READY = """
IF NEW.state = 'ready' AND NEW.limit_key <> ''{changed} THEN
    INSERT INTO django_jobs_queuekey
        (`backend`, `queue`, `key`, `next_at`, `due_at`, `window_count`)
    VALUES (NEW.backend, NEW.queue, NEW.limit_key, NEW.run_at, NEW.run_at, 0)
    ON DUPLICATE KEY UPDATE
        `due_at` = IF(`next_at` IS NULL OR NEW.run_at < `next_at`,
            GREATEST(NEW.run_at, COALESCE(`served_at`, NEW.run_at),
                COALESCE(`held_until`, NEW.run_at),
                COALESCE(`parked_until`, NEW.run_at)),
            `due_at`),
        `next_at` = IF(`next_at` IS NULL OR NEW.run_at < `next_at`,
            NEW.run_at, `next_at`);
END IF"""
BECOMES_READY = (
    " AND (OLD.state <> 'ready' OR NEW.run_at < OLD.run_at"
    " OR NEW.queue <> OLD.queue OR NEW.limit_key <> OLD.limit_key)"
)
# A running job of a key stopped: a parked key's turn comes back. Written
# whether or not the key is parked, so that it waits for a claim holding the
# key's row (see django_jobs.queue.keys). ``due_at`` first: it reads the
# parking that the next assignment clears.
FREED = """
IF OLD.state = 'reserved' AND NEW.state <> 'reserved' AND OLD.limit_key <> '' THEN
    UPDATE django_jobs_queuekey SET
        `due_at` = CASE WHEN `parked_until` IS NULL THEN `due_at`
            WHEN `next_at` IS NULL THEN NULL ELSE GREATEST(`next_at`,
            COALESCE(`served_at`, `next_at`), COALESCE(`held_until`, `next_at`))
            END,
        `parked_until` = NULL
    WHERE `backend` = OLD.backend AND `queue` = OLD.queue
        AND `key` = OLD.limit_key;
END IF"""

TRIGGERS = {
    "django_jobs_key_insert": ("INSERT", READY.format(changed="")),
    "django_jobs_key_freed": ("UPDATE", FREED),
    "django_jobs_key_update": ("UPDATE", READY.format(changed=BECOMES_READY)),
}


def forward(apps, schema_editor):
    if schema_editor.connection.vendor != "mysql":
        return
    with schema_editor.connection.cursor() as cursor:
        for name, (event, body) in TRIGGERS.items():
            cursor.execute(
                f"CREATE TRIGGER {name} AFTER {event} ON django_jobs_job"
                f" FOR EACH ROW BEGIN {body}; END"
            )


def backward(apps, schema_editor):
    if schema_editor.connection.vendor != "mysql":
        return
    with schema_editor.connection.cursor() as cursor:
        for name in TRIGGERS:
            cursor.execute(f"DROP TRIGGER IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("django_jobs", "0020_mysql")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
