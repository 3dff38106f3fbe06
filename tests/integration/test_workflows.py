"""Workflows through django_jobs.queue and the test helpers (one process).

What a worker does to the graph is what these helpers do (the same queue
calls); the acceptance tests race real workers on it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs import queue
from django_jobs.exceptions import InvalidDependency, InvalidWorkflow
from django_jobs.models import Dependency, Job, Workflow
from django_jobs.testing import run_jobs
from django_jobs.workflows import after, workflow
from tests import workflow_tasks as w
from tests.models import Record
from tests.workflow_tasks import pipeline

pytestmark = pytest.mark.django_db


def state(result) -> str:
    return Job.objects.get(pk=result.id).state


def keys() -> list[str]:
    return list(Record.objects.order_by("pk").values_list("key", flat=True))


def test_a_job_waits_for_its_upstream_then_reads_their_results():
    flow, _, matched, analyzed = pipeline()
    assert (state(matched), state(analyzed)) == ("waiting", "waiting")
    assert Job.objects.get(pk=matched.id).waiting_for == 3
    assert Job.objects.filter(workflow=flow).count() == 5
    run_jobs()
    assert keys()[:3] == ["crawl merchant", "crawl adwords", "crawl analytics"]
    assert keys()[3:] == ["match", "analyze"]
    done = w.match.get_result(matched.id)
    assert done.return_value == {
        "named": {"merchant": 10, "adwords": 10, "analytics": 10},
        "count": 3,
        "pages": [],
    }
    assert w.analyze.get_result(analyzed.id).return_value == 30
    flow.refresh_from_db()
    assert (flow.state, flow.reason) == ("succeeded", "")
    assert flow.finished_at is not None


def test_a_waiting_job_is_ready_to_django_tasks():
    _, _, matched, _ = pipeline()
    assert w.match.get_result(matched.id).status == "READY"


def test_a_failed_step_ends_what_waits_for_it_down_the_graph():
    flow, crawls, matched, analyzed = pipeline(fail="adwords")
    with after(crawls["adwords"], anyway=True):
        reported = w.report.enqueue()
    run_jobs(raise_errors=False)
    assert "match" not in keys()
    assert (state(matched), state(analyzed)) == ("buried", "buried")
    for ended in (matched, analyzed):
        job = Job.objects.get(pk=ended.id)
        assert job.blocked_by_id == int(crawls["adwords"].id)
        assert job.attempts == 0  # never run
        error = job.errors[-1]
        assert error["exception_class_path"].endswith("UpstreamFailed")
        assert (
            f"job {crawls['adwords'].id} (tests.workflow_tasks.crawl)"
            in (error["traceback"])
        )
        assert "RuntimeError: adwords answered 503" in error["traceback"]
    assert w.report.get_result(reported.id).return_value == ["FAILED"]
    flow.refresh_from_db()
    assert flow.state == "failed"
    assert flow.reason.startswith(
        f"failed at step tests.workflow_tasks.crawl (job {crawls['adwords'].id})"
    )


def test_retrying_the_failed_step_resumes_the_workflow():
    flow, crawls, matched, analyzed = pipeline(fail="adwords")
    run_jobs(raise_errors=False)
    Job.objects.filter(pk=crawls["adwords"].id).update(
        args=["adwords"], kwargs={"fail": False}
    )  # the fix is deployed
    assert queue.workflows.retry_failed(flow.pk) == 1
    assert (state(matched), state(analyzed)) == ("waiting", "waiting")
    assert Job.objects.get(pk=matched.id).waiting_for == 1
    flow.refresh_from_db()
    assert flow.state == "running"
    run_jobs()
    assert (state(matched), state(analyzed)) == ("done", "done")
    flow.refresh_from_db()
    assert flow.state == "succeeded"


def test_a_step_that_fans_out_holds_what_waits_for_it():
    with workflow("pages") as flow:
        crawled = w.crawl.enqueue("merchant", pages=3)
        other = w.crawl.enqueue("adwords")
        with after(merchant=crawled, adwords=other):
            matched = w.match.enqueue()
    run_jobs(tasks=[w.crawl])  # the crawls only: the pages wait
    assert state(matched) == "waiting"
    pages = Job.objects.filter(task_path="tests.workflow_tasks.page")
    assert pages.count() == 3
    assert set(pages.values_list("workflow", flat=True)) == {flow.pk}
    assert Job.objects.get(pk=matched.id).waiting_for == 3
    run_jobs()
    result = w.match.get_result(matched.id).return_value
    assert result == {"named": {"merchant": 10, "adwords": 10}, "count": 5,
                      "pages": [0, 1, 2]}  # fmt: skip
    flow.refresh_from_db()
    assert flow.state == "succeeded"


def test_a_detached_job_holds_nothing_and_joins_no_workflow():
    with workflow("detached") as flow:
        first = w.crawl_and_notify.enqueue("merchant")
        with after(first):
            matched = w.match.enqueue()
    run_jobs(tasks=[w.crawl_and_notify])
    notified = Job.objects.get(task_path="tests.workflow_tasks.notify")
    assert notified.workflow_id is None
    assert state(matched) == "ready"
    assert flow.pk


def test_a_job_enqueued_after_a_failed_job_ends_at_once():
    failed = w.crawl.using(max_attempts=1).enqueue("x", fail=True)
    run_jobs(raise_errors=False)
    with after(failed):
        late = w.match.enqueue()
    assert state(late) == "buried"
    assert Job.objects.get(pk=late.id).blocked_by_id == int(failed.id)
    with after(failed, anyway=True):
        anyway = w.report.enqueue()
    assert state(anyway) == "ready"


def test_a_job_enqueued_after_done_jobs_is_ready():
    first = w.crawl.enqueue("x")
    run_jobs()
    with after(first):
        later = w.match.enqueue()
    assert state(later) == "ready"


def test_cancelling_a_workflow_ends_its_jobs():
    flow, *_ = pipeline()
    assert queue.workflows.cancel(flow.pk) == 5
    assert set(Job.objects.filter(workflow=flow).values_list("state", flat=True)) == {
        "buried"
    }
    flow.refresh_from_db()
    assert flow.state == "cancelled"
    assert run_jobs() == []


def test_a_missed_deadline_fails_the_workflow_and_expires_its_steps():
    flow, _, matched, analyzed = pipeline(deadline=timedelta(hours=4))
    job = Job.objects.get(pk=matched.id)
    assert job.expires_at == flow.deadline  # each step ends by then
    run_jobs(tasks=[w.crawl], limit=1)
    Workflow.objects.filter(pk=flow.pk).update(
        deadline=timezone.now() - timedelta(seconds=1)
    )
    assert queue.workflows.missed_deadlines() == 1
    flow.refresh_from_db()
    assert flow.state == "failed"
    assert "missed its deadline" in flow.reason
    assert "at step tests.workflow_tasks.crawl" in flow.reason
    assert "1 of 5 jobs done" in flow.reason
    assert (state(matched), state(analyzed)) == ("buried", "buried")
    error = Job.objects.get(pk=matched.id).errors[-1]
    assert error["exception_class_path"].endswith("WorkflowDeadlineMissed")


def test_bad_input_is_refused_and_writes_nothing():
    before = (Job.objects.count(), Dependency.objects.count(), Workflow.objects.count())
    with (
        pytest.raises(InvalidDependency, match="job 987654 does not exist"),
        after(987654),
    ):
        w.match.enqueue()
    strict = w.crawl.using(backend="strict").enqueue("x")
    elsewhere = pytest.raises(InvalidDependency, match=r"backend \(and database\)")
    with elsewhere, after(strict):
        w.match.enqueue()  # refused before a row is looked at
    refused = pytest.raises(InvalidDependency, match="belongs to backend 'strict'")
    with refused, after(int(strict.id)):  # a bare id: its row says whose it is
        w.match.enqueue()
    too_long = pytest.raises(InvalidWorkflow, match="at most 200 characters")
    with too_long, workflow("x" * 201):
        pass
    past = timezone.now() - timedelta(minutes=1)
    with (
        pytest.raises(InvalidWorkflow, match="has passed"),
        workflow("x", deadline=past),
    ):
        pass
    with pytest.raises(InvalidDependency, match="at least one job"), after():
        pass
    not_a_job = pytest.raises(InvalidDependency, match="TaskResult of a django_jobs")
    with not_a_job, after("12"):
        pass
    first = w.crawl.enqueue("x")
    with pytest.raises(TypeError, match="a unique job cannot wait"), after(first):
        w.match.using(unique=True).enqueue()
    assert (Job.objects.count() - 2, Dependency.objects.count(),
            Workflow.objects.count()) == before  # fmt: skip


def test_a_job_cannot_join_an_ended_workflow():
    flow, *_ = pipeline()
    queue.workflows.cancel(flow.pk)
    with pytest.raises(InvalidWorkflow, match="has ended"):
        queue.insert([([], {})], task_path=w.match.module_path, workflow=flow.pk)


def test_the_rescuers_net_counts_a_waiting_job_again():
    _, _, matched, _ = pipeline()
    run_jobs(tasks=[w.crawl])
    Job.objects.filter(pk=matched.id).update(state="waiting", waiting_for=2)
    assert queue.workflows.repair() == 1
    assert state(matched) == "ready"


def test_pruning_deletes_the_edges_then_the_empty_workflow():
    flow, *_ = pipeline()
    run_jobs()
    later = timezone.now() + timedelta(seconds=1)
    assert queue.prune(done_before=later, buried_before=None) == {
        "done": 5,
        "buried": 0,
    }  # jobs only: their edges go with them
    assert Dependency.objects.count() == 0
    assert queue.workflows.prune(later) == 1
    assert not Workflow.objects.filter(pk=flow.pk).exists()


def test_the_last_completion_settles_a_workflow_whose_downstream_ended():
    flow, _crawls, *_ = pipeline(fail="merchant")  # claimed first, fails first
    run_jobs(raise_errors=False)
    flow.refresh_from_db()
    assert flow.state == "failed"  # at the last crawl's completion


def test_retrying_a_cancelled_workflow_waits_again_for_what_it_waited_for():
    flow, crawls, matched, analyzed = pipeline()
    queue.workflows.cancel(flow.pk)
    assert queue.workflows.retry_failed(flow.pk) == 5
    assert (state(matched), state(analyzed)) == ("waiting", "waiting")
    assert Job.objects.get(pk=matched.id).waiting_for == 3
    assert {state(crawl) for crawl in crawls.values()} == {"ready"}
    flow.refresh_from_db()
    assert (flow.state, flow.reason) == ("running", "")
    run_jobs()
    flow.refresh_from_db()
    assert flow.state == "succeeded"


def test_retrying_one_step_by_hand_runs_its_workflow_again():
    flow, crawls, _matched, _ = pipeline(fail="adwords")
    run_jobs(raise_errors=False)
    Job.objects.filter(pk=crawls["adwords"].id).update(kwargs={"fail": False})
    queue.kick(int(crawls["adwords"].id))
    flow.refresh_from_db()
    assert flow.state == "running"
    run_jobs()
    flow.refresh_from_db()
    assert flow.state == "succeeded"


def test_retrying_after_a_missed_deadline_lifts_it():
    flow, _, matched, _ = pipeline(deadline=timedelta(hours=4))
    Workflow.objects.filter(pk=flow.pk).update(
        deadline=timezone.now() - timedelta(seconds=1)
    )
    queue.workflows.missed_deadlines()
    assert queue.workflows.retry_failed(flow.pk) == 5
    flow.refresh_from_db()
    assert (flow.state, flow.deadline) == ("running", None)
    assert state(matched) == "waiting"
    run_jobs()
    flow.refresh_from_db()
    assert flow.state == "succeeded"


def test_eager_jobs_run_a_workflow_step_by_step(eager_jobs):
    flow, _, matched, analyzed = pipeline()
    assert (state(matched), state(analyzed)) == ("done", "done")
    flow.refresh_from_db()
    assert flow.state == "succeeded"


def test_eager_jobs_run_a_waiting_job_once_released():
    from django_jobs.testing import run_on_enqueue

    with workflow("eager"):
        crawled = w.crawl.using(run_after=timedelta(hours=1)).enqueue("later")
        with run_on_enqueue(tasks=[w.match, w.crawl]), after(crawled):
            matched = w.match.enqueue()
            assert state(matched) == "waiting"
            queue.kick(int(crawled.id))  # due now: not an enqueue, not run here
            w.crawl.enqueue("now")  # an enqueue: eager runs it, then what waits
        assert state(crawled) == "ready"
    run_jobs()
    assert state(matched) == "done"


def test_a_step_cannot_fan_out_a_job_after_what_waits_for_it():
    with workflow("loop"):
        step = w.loop.using(max_attempts=1).enqueue()
        with after(step):
            w.match.enqueue()
    run_jobs(raise_errors=False)
    error = Job.objects.get(pk=step.id).errors[-1]
    assert error["exception_class_path"].endswith("InvalidDependency")
    assert "a cycle" in error["traceback"]
    assert not Job.objects.filter(task_path="tests.workflow_tasks.notify").exists()
