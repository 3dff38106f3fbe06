"""Rows written by hand reach a real worker: it buries them and carries on."""

import json

from django_jobs.models import Job
from tests import tasks
from tests.integration.conftest import write_by_hand


def test_a_worker_buries_rows_it_cannot_run_and_runs_the_rest(start_worker):
    infinite = tasks.add.using(priority=90).enqueue(1, 1)
    deep = tasks.add.using(priority=90).enqueue(1, 1)
    not_a_list = tasks.echo.using(priority=90).enqueue(1)
    good = [tasks.add.enqueue(i, 1) for i in range(6)]
    write_by_hand(int(infinite.id), "run_at", "-infinity")
    write_by_hand(int(deep.id), "args", "[" * 1500 + "]" * 1500)
    write_by_hand(int(not_a_list.id), "args", json.dumps({"by": "hand"}))

    worker = start_worker("--burst", "--concurrency", "2")
    assert worker.wait(timeout=60) == 0, worker.output

    for result, field in ((infinite, "run_at"), (deep, "args"), (not_a_list, "args")):
        job = Job.objects.get(pk=result.id)
        assert job.state == "buried"
        assert f"InvalidJobRow: {field} " in job.errors[-1]["traceback"]
    assert [Job.objects.get(pk=r.id).return_value for r in good] == list(range(1, 7))
    assert worker.output.count("its row cannot be run") == 3
