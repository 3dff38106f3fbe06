"""The README's demo command runs a real worker over a mix of jobs."""

import pytest
from django.core.management import call_command

from django_jobs.models import Job, Workflow
from tests.acceptance.conftest import database_url

pytestmark = pytest.mark.database_agnostic


def test_demo_command(transactional_db, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", database_url())
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "tests.settings")
    call_command("demo", timeout=60, outage=0)
    out = capsys.readouterr().out
    assert "What happened" in out
    states = dict(Job.objects.values_list("task_path", "state").order_by("pk"))
    assert states["testproject.demo.tasks.flaky_report"] == "buried"
    assert states["testproject.demo.tasks.send_welcome"] == "done"
    assert Job.objects.filter(state="done", workflow=None).count() == 4
    assert Workflow.objects.get().state == "succeeded"  # the talk's pipeline
    assert "2 error(s), last: RuntimeError" in out
