"""Memory and CPU-time limits per job, and what each attempt used."""

from django.db import migrations, models

import django_jobs.fields


class Migration(migrations.Migration):
    dependencies = [
        ("django_jobs", "0012_workflows"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="max_memory",
            field=models.PositiveBigIntegerField(
                blank=True, null=True, verbose_name="max memory"
            ),
        ),
        migrations.AddField(
            model_name="job",
            name="max_cpu_seconds",
            field=models.FloatField(
                blank=True, null=True, verbose_name="max CPU seconds"
            ),
        ),
        migrations.AddField(
            model_name="job",
            name="usage",
            field=django_jobs.fields.ReadableJSONField(
                blank=True, db_default=[], default=list, verbose_name="usage"
            ),
        ),
    ]
