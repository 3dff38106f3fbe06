"""Django's own ``django.tasks`` logger does not repeat the worker's lines.

Django's Tasks framework logs every job's start and end ("Task id=...
path=... state=RUNNING"); the worker says the same in its own words. In a
project with no LOGGING (Django's default logging shows INFO while DEBUG is
on, as it is in the test project), the worker quiets Django's logger; a
project whose LOGGING configures it keeps it.
"""

from __future__ import annotations

from tests import tasks

NO_LOGGING = {"DJANGO_SETTINGS_MODULE": "tests.nologging_settings"}


def test_without_logging_settings_each_job_is_said_once(start_worker):
    done = tasks.add.enqueue(1, 2)
    worker = start_worker("--burst", "--concurrency", "1", **NO_LOGGING)
    assert worker.wait() == 0, worker.output
    assert f"job {done.id} tests.tasks.add (attempt 1/3): done in" in worker.output
    assert "Task id=" not in worker.output


def test_a_project_that_configures_the_tasks_logger_keeps_its_lines(start_worker):
    done = tasks.add.enqueue(1, 2)
    worker = start_worker("--burst", "--concurrency", "1")  # tests.settings
    assert worker.wait() == 0, worker.output
    assert f"Task id={done.id} path=tests.tasks.add state=SUCCESSFUL" in worker.output
