"""An index of each queue's ready jobs in claim order.

A worker that claims named queues (``runworker --queue``) then reads each
queue's best jobs on this index, instead of walking every queue's ready
jobs in claim order, past the backlog of the queues ahead of its own.

On PostgreSQL the index is built on the job table alone (the history's day
tables hold no ready jobs): it reads the hot table's ready jobs, and the
table's writes wait for it, about a second per million ready jobs.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("django_jobs", "0018_trace_context")]

    operations = [
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                condition=models.Q(("state", "ready")),
                fields=["queue", "-priority", "run_at", "id"],
                name="django_jobs_job_queue_claim",
            ),
        ),
    ]
