"""Workflows run by real workers: released once, never early, racing.

The fan-in step of each graph must run exactly once, after every job it
waits for has finished, whichever worker finishes the last of them (two
parents may finish at the same instant on two workers).
"""

from __future__ import annotations

import signal
from datetime import timedelta

import pytest
from django.db.models import Count

from django_jobs import queue
from django_jobs.models import Job, Workflow
from django_jobs.workflows import after, workflow
from tests import workflow_tasks as w
from tests.acceptance.conftest import wait_for
from tests.models import Record


def diamonds(count: int) -> list[int]:
    """``count`` workflows: two crawls, then match after both."""
    matches = []
    for n in range(count):
        with workflow(f"diamond {n}"):
            first = w.crawl.enqueue(f"a{n}")
            second = w.crawl.enqueue(f"b{n}")
            with after(a=first, b=second):
                matches.append(int(w.match.enqueue().id))
    return matches


def assert_ran_once_and_in_order(matches: list[int]) -> None:
    runs = dict(
        Record.objects.filter(key="match").values_list("job_id").annotate(n=Count("id"))
    )
    assert runs == {str(pk): 1 for pk in matches}
    ran = dict(Record.objects.filter(key="match").values_list("job_id", "created_at"))
    for job in Job.objects.filter(pk__in=matches):
        assert job.state == "done"
        upstream = Job.objects.filter(downstream_edges__downstream=job)
        assert upstream.count() == 2
        # When its code ran, not its started_at: the claiming worker reads
        # its clock before its claim reaches the database, which may be
        # after the upstream's completion read its own (both before commit).
        assert all(ran[str(job.pk)] >= parent.finished_at for parent in upstream)
        assert job.return_value["named"] == {"a": 10, "b": 10}
    assert set(Workflow.objects.values_list("state", flat=True)) == {"succeeded"}


@pytest.mark.postgres
def test_racing_workers_release_each_fan_in_once(start_worker):
    matches = diamonds(40)
    workers = [start_worker("--burst", "--concurrency", "2") for _ in range(3)]
    for worker in workers:
        assert worker.wait(timeout=180) == 0, worker.output
    # A worker in burst mode stops when nothing is ready; what the others
    # released after that is left to a last one.
    last = start_worker("--burst")
    assert last.wait(timeout=120) == 0, last.output
    assert_ran_once_and_in_order(matches)


def test_two_workers_run_workflows_exactly_once(start_worker):
    matches = diamonds(8)
    workers = [start_worker("--burst", "--concurrency", "2") for _ in range(2)]
    for worker in workers:
        assert worker.wait(timeout=120) == 0, worker.output
    last = start_worker("--burst")
    assert last.wait(timeout=120) == 0, last.output
    assert_ran_once_and_in_order(matches)


def test_a_step_in_a_worker_fans_out_and_the_fan_in_waits(start_worker):
    with workflow("pages") as flow:
        crawled = w.crawl.enqueue("merchant", pages=5)
        with after(merchant=crawled):
            matched = w.match.enqueue()
    worker = start_worker("--burst", "--jobs-per-child", "10")
    assert worker.wait(timeout=120) == 0, worker.output
    result = Job.objects.get(pk=matched.id)
    assert result.state == "done"
    assert result.return_value == {"named": {"merchant": 10}, "count": 6,
                                   "pages": [0, 1, 2, 3, 4]}  # fmt: skip
    pages = Job.objects.filter(task_path="tests.workflow_tasks.page")
    assert {job.workflow_id for job in pages} == {flow.pk}
    assert all(result.started_at >= job.finished_at for job in pages)
    flow.refresh_from_db()
    assert flow.state == "succeeded"


def test_a_failed_step_ends_its_downstream_and_a_retry_resumes_it(start_worker):
    with workflow("failing") as flow:
        crawled = w.crawl.using(max_attempts=1).enqueue("adwords", fail=True)
        with after(adwords=crawled):
            matched = w.match.enqueue()
        with after(matched, anyway=True):
            reported = w.report.enqueue()
    worker = start_worker("--burst")
    assert worker.wait(timeout=60) == 0, worker.output
    assert Job.objects.get(pk=matched.id).state == "buried"
    assert Job.objects.get(pk=reported.id).return_value == ["FAILED"]
    flow.refresh_from_db()
    assert flow.state == "failed"
    assert "RuntimeError: adwords answered 503" in flow.reason
    Job.objects.filter(pk=crawled.id).update(kwargs={"fail": False})
    assert queue.workflows.retry_failed(flow.pk) == 1
    again = start_worker("--burst")
    assert again.wait(timeout=60) == 0, again.output
    assert Job.objects.get(pk=matched.id).state == "done"
    flow.refresh_from_db()
    assert flow.state == "succeeded"


def test_a_missed_deadline_stops_the_running_step(start_worker):
    with workflow("late", deadline=timedelta(seconds=3)) as flow:
        slow = w.slow.enqueue(60)
        with after(slow):
            matched = w.match.enqueue()
    worker = start_worker()
    wait_for(
        lambda: Job.objects.get(pk=slow.id).state == "buried",
        timeout=30,
        message="the running step stopped at the deadline",
    )
    worker.send(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, worker.output
    flow.refresh_from_db()
    assert flow.state == "failed"
    assert flow.reason.startswith("missed its deadline")
    assert Job.objects.get(pk=matched.id).state == "buried"
    assert (
        Job.objects.get(pk=slow.id)
        .errors[-1]["exception_class_path"]
        .endswith("JobCancelled")
    )
