"""Jobs waiting for a backend alias that is not in TASKS are not silent."""

import logging

from django_jobs import queue
from django_jobs.backend import jobs_backend
from django_jobs.worker.duties import StrayJobs
from django_jobs.worker.options import WorkerOptions


def test_a_worker_warns_once_per_unknown_alias(db, caplog):
    for alias in ("typo", "typo", "removed"):
        queue.enqueue(task_path="tests.tasks.noop", backend=alias)
    queue.enqueue(task_path="tests.tasks.noop")  # a known alias: fine
    duty = StrayJobs(WorkerOptions(backend=jobs_backend("default")))
    with caplog.at_level(logging.WARNING, logger="django_jobs.worker"):
        assert duty.run_once() == {"typo": 2, "removed": 1}
        duty.run_once()
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "1 job(s) wait for backend 'removed', which is not in the TASKS setting: "
        "no worker will run them (see `manage.py jobs stats`)",
        "2 job(s) wait for backend 'typo', which is not in the TASKS setting: "
        "no worker will run them (see `manage.py jobs stats`)",
    ]


def test_jobs_stats_and_the_dashboard_show_them(db, admin_client):
    from io import StringIO

    from django.core.management import call_command

    queue.enqueue(task_path="tests.tasks.noop", backend="typo")
    out, err = StringIO(), StringIO()
    call_command("jobs", "stats", stdout=out, stderr=err)
    assert "1 ready job(s) wait for backend 'typo'" in err.getvalue()
    call_command("jobs", "stats", "--json", stdout=out)
    assert '"unknown_backends": {\n    "typo": 1' in out.getvalue()
    page = admin_client.get("/admin/django_jobs/queue/", follow=True)
    assert "wait for backend &#x27;typo&#x27;" in page.content.decode()
