"""``manage.py jobs`` and workflows: ``jobs workflows``, a job's graph in
``jobs show``, ``jobs list --state waiting`` and the waiting count of
``jobs stats``."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_jobs import queue
from django_jobs.management.workflows import NEIGHBOURS_SHOWN
from django_jobs.models import Job, Workflow
from django_jobs.testing import run_jobs
from django_jobs.workflows import after, workflow
from tests import workflow_tasks as w

pytestmark = pytest.mark.django_db


def jobs(*args) -> str:
    out = StringIO()
    call_command("jobs", *map(str, args), stdout=out, stderr=StringIO())
    return out.getvalue()


def as_json(*args):
    return json.loads(jobs(*args, "--json"))


def pipeline(name: str = "nightly", **options):
    """``workflow_tasks.pipeline``, with match and analyze as ids."""
    flow, crawls, matched, analyzed = w.pipeline(name, **options)
    return flow, crawls, int(matched.id), int(analyzed.id)


def test_workflows_lists_each_with_its_jobs_counted():
    failed, *_ = pipeline("nightly", fail="adwords")
    run_jobs(raise_errors=False)
    running, *_ = pipeline("hourly", deadline=timedelta(hours=4))
    run_jobs(tasks=[w.crawl], limit=1)
    listed = as_json("workflows")
    assert [doc["id"] for doc in listed] == [running.pk, failed.pk]
    now, then = listed
    assert (now["name"], now["state"]) == ("hourly", "running")
    assert now["backend"] == "default"
    counts = {name: now[name] for name in ("done", "failed", "running", "total")}
    assert counts == {"done": 1, "failed": 0, "running": 0, "total": 5}
    assert (now["waiting"], now["ready"]) == (2, 2)
    assert 4 * 3600 - 60 < now["seconds_left"] <= 4 * 3600
    assert now["deadline"] == running.deadline.isoformat()
    assert (now["finished_at"], now["reason"]) == (None, None)
    assert then["state"] == "failed"
    assert (then["done"], then["failed"], then["total"]) == (2, 3, 5)
    assert then["reason"].startswith("failed at step tests.workflow_tasks.crawl")
    assert then["finished_at"] is not None
    assert then["seconds_left"] is None
    out = jobs("workflows")
    lines = out.splitlines()
    assert lines[0].split() == [
        "id", "name", "state", "done", "failed", "waiting", "ready", "running",
        "total",
        "started", "finished", "deadline", "reason",
    ]  # fmt: skip
    assert lines[2].split()[:9] == [str(running.pk), "hourly", "running",
                                    "1", "0", "2", "2", "0", "5"]  # fmt: skip
    assert "3 h 59 min left" in lines[2]
    assert "failed at step tests.workflow_tasks.crawl" in lines[3]


def test_workflows_filters_by_state_and_name():
    first, *_ = pipeline("nightly sync")
    second, *_ = pipeline("nightly report")
    third, *_ = pipeline("hourly")
    queue.workflows.cancel(second.pk)

    def ids(*args) -> list[int]:
        return [doc["id"] for doc in as_json("workflows", *args)]

    assert ids("--state", "running") == [third.pk, first.pk]
    assert ids("--state", "cancelled") == [second.pk]
    assert ids("--name", "nightly*") == [second.pk, first.pk]
    assert ids("--name", "hourly") == [third.pk]
    assert ids("--name", "nightly") == []
    assert ids("--limit", "1") == [third.pk]
    assert jobs("workflows", "--state", "succeeded").splitlines()[2:] == []


def test_workflows_counts_from_one_grouped_query_whatever_their_number():
    for n in range(3):
        pipeline(f"run {n}")

    def queries(*args) -> int:
        with CaptureQueriesContext(connection) as captured:
            jobs("workflows", *args)
        return len(captured)

    few = queries("--limit", "1")
    assert few == queries() == 2  # the workflows, then their jobs counted


def test_a_workflow_without_jobs_or_deadline():
    with workflow("empty"):
        pass
    (doc,) = as_json("workflows")
    assert (doc["total"], doc["deadline"], doc["seconds_left"]) == (0, None, None)
    row = jobs("workflows").splitlines()[2].split()
    assert row[3:9] == ["0"] * 6
    assert row[-1] == "-"  # deadline


def test_a_running_workflow_past_its_deadline_says_so():
    flow, *_ = pipeline("late", deadline=timedelta(hours=1))
    Workflow.objects.filter(pk=flow.pk).update(
        deadline=timezone.now() - timedelta(minutes=3)
    )
    (doc,) = as_json("workflows")
    assert doc["seconds_left"] < 0
    assert "passed 3 min ago" in jobs("workflows")


def test_workflows_bad_input():
    with pytest.raises(CommandError, match="--limit must be at least 1"):
        jobs("workflows", "--limit", "0")
    with pytest.raises(CommandError, match="invalid choice: 'waiting'"):
        jobs("workflows", "--state", "waiting")
    with pytest.raises(CommandError, match="--name must not be empty"):
        jobs("workflows", "--name", "*")
    with pytest.raises(CommandError, match="a workflow name has at most 200"):
        jobs("workflows", "--name", "x" * 201)


def test_show_prints_the_jobs_a_job_waits_for_and_those_waiting_for_it():
    flow, crawls, matched, analyzed = pipeline()
    run_jobs(tasks=[w.crawl], limit=1)
    out = jobs("show", matched)
    lines = out.splitlines()
    assert f"  workflow  nightly #{flow.pk} (running)" in lines
    start = lines.index("Upstream, the jobs it waits for (3; 2 not finished):")
    merchant, adwords, analytics = (int(crawls[s].id) for s in crawls)
    assert lines[start + 1 : start + 4] == [
        f"  #{merchant}  crawl  done   merchant",
        f"  #{adwords}  crawl  ready  adwords",
        f"  #{analytics}  crawl  ready  analytics",
    ]
    down = lines.index("Downstream, the jobs that wait for it (1):")
    assert lines[down + 1] == f"  #{analyzed}  analyze  waiting"
    document = as_json("show", matched)
    assert document["workflow"]["name"] == "nightly"
    assert document["workflow"]["state"] == "running"
    assert document["waiting_for"] == 2
    assert document["upstream"]["count"] == 3
    assert document["upstream"]["jobs"][1] == {
        "id": adwords,
        "task": "tests.workflow_tasks.crawl",
        "state": "ready",
        "name": "adwords",
    }
    assert document["downstream"] == {
        "count": 1,
        "jobs": [
            {
                "id": analyzed,
                "task": "tests.workflow_tasks.analyze",
                "state": "waiting",
                "name": None,
            }
        ],
    }
    assert (document["blocked_by"], document["runs_anyway"]) == (None, False)


def test_show_names_the_failed_job_that_ended_a_job():
    _, crawls, matched, _ = pipeline(fail="adwords")
    with after(crawls["adwords"], anyway=True):
        reported = int(w.report.enqueue().id)
    run_jobs(raise_errors=False)
    failed = int(crawls["adwords"].id)
    out = jobs("show", matched)
    assert (
        f"  blocked by  #{failed}: it failed, so this job was not run; "
        f"retrying #{failed} makes it wait again"
    ) in out.splitlines()
    assert "Upstream, the jobs it waits for (3):" in out  # it does not wait now
    assert as_json("show", matched)["blocked_by"] == failed
    assert "runs anyway (even if a job it waits for fails)" in jobs("show", reported)
    assert as_json("show", reported)["runs_anyway"] is True
    downstream = as_json("show", failed)["downstream"]
    assert {job["id"] for job in downstream["jobs"]} == {matched, reported}


def test_show_lists_a_fan_in_in_part_and_counts_the_rest():
    with workflow("pages"):
        crawled = w.crawl.enqueue("merchant", pages=NEIGHBOURS_SHOWN + 5)
        with after(crawled):
            matched = int(w.match.enqueue().id)
    run_jobs(tasks=[w.crawl])
    document = as_json("show", matched)
    assert document["upstream"]["count"] == NEIGHBOURS_SHOWN + 6
    assert len(document["upstream"]["jobs"]) == NEIGHBOURS_SHOWN
    assert document["upstream"]["jobs"][0]["name"] is None
    assert document["waiting_for"] == NEIGHBOURS_SHOWN + 5
    assert "  ... and 6 more" in jobs("show", matched).splitlines()


def test_show_of_a_job_outside_any_workflow_leaves_the_graph_out():
    job = queue.enqueue(task_path="tests.tasks.noop")
    out = jobs("show", job.pk)
    for absent in ("workflow", "Upstream", "Downstream", "blocked by", "anyway"):
        assert absent not in out
    document = as_json("show", job.pk)
    assert document["workflow"] is None
    assert document["upstream"] == document["downstream"] == {"count": 0, "jobs": []}


def test_list_takes_the_waiting_state_and_a_workflow():
    flow, _, matched, analyzed = pipeline()
    other = int(w.crawl.enqueue("elsewhere").id)
    waiting = [job["id"] for job in as_json("list", "--state", "waiting")]
    assert waiting == [analyzed, matched]
    listed = [job["id"] for job in as_json("list", "--workflow", flow.pk)]
    assert other not in listed
    assert len(listed) == 5
    table = jobs("list", "--state", "waiting")
    assert "waiting" in table.splitlines()[2]


def test_stats_counts_the_waiting_jobs():
    pipeline()
    w.crawl.using(queue_name="emails").enqueue("x")
    out = jobs("stats")
    header, _, *rows = out.splitlines()
    assert header.split()[:3] == ["queue", "waiting", "ready"]
    default = next(row for row in rows if row.startswith("default"))
    assert default.split()[1:3] == ["2", "3"]
    report = as_json("stats")
    by_name = {q["name"]: q for q in report["queues"]}
    assert (by_name["default"]["waiting"], by_name["emails"]["waiting"]) == (2, 0)
    assert report["total"]["waiting"] == 2
    only = as_json("stats", "--queue", "emails")
    assert only["total"]["waiting"] == 0
    assert Job.objects.filter(state="waiting").count() == 2


def test_prune_deletes_the_ended_workflows_whose_jobs_are_gone():
    flow, *_ = pipeline("old")
    kept, *_ = pipeline("kept")
    run_jobs()
    long_ago = timezone.now() - timedelta(days=30)
    Job.objects.filter(workflow=flow).update(finished_at=long_ago)
    Workflow.objects.filter(pk=flow.pk).update(finished_at=long_ago)
    out = jobs("prune", "--dry-run")
    assert "would delete 5 done and 0 buried job(s)." in out
    assert "workflow" not in out  # a dry run counts jobs only
    out = jobs("prune")
    assert "deleted 5 done and 0 buried job(s)." in out
    assert "deleted 1 ended workflow(s) with no job left." in out
    assert list(Workflow.objects.values_list("pk", flat=True)) == [kept.pk]
    assert "workflow" not in jobs("prune")  # nothing more to delete
