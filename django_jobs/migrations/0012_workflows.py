"""Workflows: jobs that wait for jobs (issue 21).

A new state, ``waiting``: a job that waits for its upstream jobs (the
``Dependency`` edges) to finish. ``Workflow`` rows group such jobs, with a
state kept in step by django_jobs.queue and an optional deadline. On
PostgreSQL the new columns have constant defaults (no table rewrite); the
new partial indexes hold no existing row; the unique-while-waiting index is
built again to cover waiting jobs too.
"""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_jobs", "0011_worker_listener"),
    ]

    operations = [
        migrations.CreateModel(
            name="Dependency",
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
                (
                    "name",
                    models.CharField(
                        blank=True, default="", max_length=100, verbose_name="name"
                    ),
                ),
                (
                    "position",
                    models.PositiveIntegerField(default=0, verbose_name="position"),
                ),
            ],
            options={
                "verbose_name": "dependency",
                "verbose_name_plural": "dependencies",
            },
        ),
        migrations.CreateModel(
            name="Workflow",
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
                (
                    "backend",
                    models.CharField(
                        default="default", max_length=100, verbose_name="backend"
                    ),
                ),
                ("name", models.CharField(max_length=200, verbose_name="name")),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("running", "running"),
                            ("succeeded", "succeeded"),
                            ("failed", "failed"),
                            ("cancelled", "cancelled"),
                        ],
                        default="running",
                        max_length=20,
                        verbose_name="state",
                    ),
                ),
                (
                    "created_at",
                    models.DateTimeField(
                        default=django.utils.timezone.now, verbose_name="created at"
                    ),
                ),
                (
                    "finished_at",
                    models.DateTimeField(
                        blank=True, null=True, verbose_name="finished at"
                    ),
                ),
                (
                    "deadline",
                    models.DateTimeField(
                        blank=True, null=True, verbose_name="deadline"
                    ),
                ),
                (
                    "reason",
                    models.TextField(blank=True, default="", verbose_name="reason"),
                ),
                (
                    "sealed_at",
                    models.DateTimeField(
                        blank=True, null=True, verbose_name="sealed at"
                    ),
                ),
            ],
            options={
                "verbose_name": "workflow",
                "verbose_name_plural": "workflows",
            },
        ),
        migrations.RemoveConstraint(
            model_name="job",
            name="django_jobs_job_state_valid",
        ),
        migrations.RemoveConstraint(
            model_name="job",
            name="django_jobs_job_unique_while_waiting",
        ),
        migrations.AddField(
            model_name="job",
            name="blocked_by",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="django_jobs.job",
                verbose_name="ended by the failure of",
            ),
        ),
        migrations.AddField(
            model_name="job",
            name="downstream_count",
            field=models.PositiveIntegerField(
                db_default=0, default=0, verbose_name="jobs waiting for it"
            ),
        ),
        migrations.AddField(
            model_name="job",
            name="runs_anyway",
            field=models.BooleanField(
                db_default=False, default=False, verbose_name="runs anyway"
            ),
        ),
        migrations.AddField(
            model_name="job",
            name="waiting_for",
            field=models.PositiveIntegerField(
                db_default=0, default=0, verbose_name="waiting for"
            ),
        ),
        migrations.AlterField(
            model_name="job",
            name="state",
            field=models.CharField(
                choices=[
                    ("waiting", "waiting"),
                    ("ready", "ready"),
                    ("reserved", "reserved"),
                    ("done", "done"),
                    ("buried", "buried"),
                ],
                default="ready",
                max_length=10,
                verbose_name="state",
            ),
        ),
        migrations.AddField(
            model_name="dependency",
            name="downstream",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="upstream_edges",
                to="django_jobs.job",
                verbose_name="downstream job",
            ),
        ),
        migrations.AddField(
            model_name="dependency",
            name="upstream",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="downstream_edges",
                to="django_jobs.job",
                verbose_name="upstream job",
            ),
        ),
        migrations.AddIndex(
            model_name="workflow",
            index=models.Index(
                fields=["state", "-id"], name="django_jobs_workflow_state"
            ),
        ),
        migrations.AddIndex(
            model_name="workflow",
            index=models.Index(
                fields=["name", "-id"], name="django_jobs_workflow_name"
            ),
        ),
        migrations.AddIndex(
            model_name="workflow",
            index=models.Index(
                condition=models.Q(("deadline__isnull", False), ("state", "running")),
                fields=["deadline"],
                name="django_jobs_workflow_due",
            ),
        ),
        migrations.AddField(
            model_name="job",
            name="workflow",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="jobs",
                to="django_jobs.workflow",
                verbose_name="workflow",
            ),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                condition=models.Q(("workflow__isnull", False)),
                fields=["workflow", "state"],
                name="django_jobs_job_workflow",
            ),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                condition=models.Q(("state", "waiting")),
                fields=["backend"],
                name="django_jobs_job_waiting",
            ),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                condition=models.Q(("blocked_by__isnull", False)),
                fields=["blocked_by"],
                name="django_jobs_job_blocked_by",
            ),
        ),
        migrations.AddConstraint(
            model_name="job",
            constraint=models.UniqueConstraint(
                condition=models.Q(
                    ("state__in", ["waiting", "ready", "reserved"]),
                    models.Q(("unique_key", ""), _negated=True),
                ),
                fields=("backend", "unique_key"),
                name="django_jobs_job_unique_while_waiting",
            ),
        ),
        migrations.AddConstraint(
            model_name="job",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("state__in", ["waiting", "ready", "reserved", "done", "buried"])
                ),
                name="django_jobs_job_state_valid",
            ),
        ),
        migrations.AddIndex(
            model_name="dependency",
            index=models.Index(
                fields=["downstream", "position"], name="django_jobs_dep_downstream"
            ),
        ),
        migrations.AddConstraint(
            model_name="dependency",
            constraint=models.UniqueConstraint(
                fields=("upstream", "downstream"), name="django_jobs_dependency_once"
            ),
        ),
    ]
