"""Job.trace_context: the enqueue's W3C trace context (docs/observability.rst).

A nullable column without a default: PostgreSQL and SQLite add it without
rewriting the table, however big. On PostgreSQL the history's day tables
inherit from the job table and get the column with it, last, as the job
table does: the history's move (``INSERT ... SELECT * FROM gone``, where
``gone`` is the job table's ``DELETE ... RETURNING *``) still lines up.
"""

from django.db import migrations

import django_jobs.fields


class Migration(migrations.Migration):
    dependencies = [("django_jobs", "0017_history")]

    operations = [
        migrations.AddField(
            model_name="job",
            name="trace_context",
            field=django_jobs.fields.ReadableJSONField(
                blank=True, null=True, verbose_name="trace context"
            ),
        ),
    ]
