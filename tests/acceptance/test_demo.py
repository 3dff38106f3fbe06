"""The README's demo command runs a real worker over a mix of jobs."""

from django.core.management import call_command

from django_jobs.models import Job
from tests.acceptance.conftest import database_url


def test_demo_command(transactional_db, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", database_url())
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "tests.settings")
    call_command("demo", timeout=60)
    out = capsys.readouterr().out
    assert "What happened" in out
    states = dict(Job.objects.values_list("task_path", "state").order_by("pk"))
    assert states["testproject.demo.tasks.flaky_report"] == "buried"
    assert states["testproject.demo.tasks.send_welcome"] == "done"
    assert Job.objects.filter(state="done").count() == 4
    assert "2 error(s), last: RuntimeError" in out
