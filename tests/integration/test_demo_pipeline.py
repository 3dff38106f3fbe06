"""The demo's workflow, the talk's pipeline, run in-process (run_jobs).

The fake sources' latency is left out and their outages are chosen by the
test; the demo command runs the same graph on a real worker.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from django_jobs.models import Job
from django_jobs.testing import run_jobs
from testproject.demo import pipeline

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_latency(monkeypatch):
    monkeypatch.setattr(pipeline, "_work", lambda low, high: None)


def outages(monkeypatch, *answers: bool) -> None:
    """The AdWords crawl's attempts meet these outages, in turn."""
    answers = iter(answers)
    monkeypatch.setattr(pipeline, "_outage", lambda chance: next(answers))


def job(result) -> Job:
    return Job.objects.get(pk=result.id)


def test_the_nightly_sync_runs_every_step_and_posts_its_decisions():
    flow, steps = pipeline.nightly_sync(pages=3, outage=0)
    assert flow.name == "nightly sync"
    assert flow.deadline - flow.created_at == pytest.approx(
        pipeline.DEADLINE, abs=timedelta(seconds=5)
    )
    assert job(steps["match"]).state == "waiting"
    run_jobs()
    flow.refresh_from_db()
    assert (flow.state, flow.reason) == ("succeeded", "")
    jobs = Job.objects.filter(workflow=flow)
    pages = jobs.filter(task_path="testproject.demo.pipeline.fetch_products_page")
    assert (jobs.count(), pages.count()) == (8 + 3, 3)  # the steps, the pages
    assert set(jobs.values_list("state", flat=True)) == {"done"}
    assert set(jobs.values_list("expires_at", flat=True)) == {flow.deadline}
    matched = job(steps["match"]).return_value
    assert (matched["pages"], matched["products"]) == (3, 30)
    assert matched["matched"]  # products that both ad sources know
    assert all({"price", "clicks", "revenue"} <= set(row) for row in matched["matched"])
    decided = job(steps["decide"]).return_value
    posted = job(steps["post"]).return_value
    assert posted["changes"] == len(decided["raise"]) + len(decided["lower"])
    report = job(steps["report"]).return_value
    assert report["summary"] == f"posted {posted['changes']} bid changes"
    assert set(report["steps"].values()) == {"SUCCESSFUL"}


def test_the_match_waits_for_the_pages_the_merchant_crawl_adds():
    _, steps = pipeline.nightly_sync(pages=4, outage=0)
    run_jobs(tasks=[pipeline.crawl_merchant_center])
    assert job(steps["match"]).waiting_for == 2 + 4  # two crawls, four pages
    run_jobs(tasks=[pipeline.crawl_adwords, pipeline.crawl_analytics])
    assert job(steps["match"]).state == "waiting"
    run_jobs()
    assert job(steps["match"]).return_value["products"] == 40


def test_an_outage_of_adwords_is_retried_and_the_run_goes_on(monkeypatch):
    outages(monkeypatch, True, False)
    flow, steps = pipeline.nightly_sync(pages=2)
    run_jobs(raise_errors=False, delayed=True)
    adwords = job(steps["adwords"])
    assert (adwords.state, adwords.attempts, len(adwords.errors)) == ("done", 2, 1)
    assert "AdWords API answered 503" in adwords.errors[0]["traceback"]
    flow.refresh_from_db()
    assert flow.state == "succeeded"


def test_adwords_down_for_good_fails_the_run_and_the_report_says_so(monkeypatch):
    outages(monkeypatch, True, True)
    flow, steps = pipeline.nightly_sync(pages=2)
    run_jobs(raise_errors=False, delayed=True)
    adwords = job(steps["adwords"])
    assert (adwords.state, adwords.attempts) == ("buried", 2)
    for name in ("match", "analyze", "decide", "post"):
        ended = job(steps[name])
        assert (ended.state, ended.attempts) == ("buried", 0)  # never run
        assert ended.blocked_by_id == adwords.pk
        assert "crawl_adwords) it waited for failed" in ended.errors[-1]["traceback"]
    for name in ("merchant", "analytics"):
        assert job(steps[name]).state == "done"
    report = job(steps["report"])
    assert report.state == "done"
    assert report.return_value["summary"] == (
        "nothing posted: adwords, match, analyze, decide, post did not succeed"
    )
    assert report.return_value["steps"]["merchant"] == "SUCCESSFUL"
    assert report.return_value["steps"]["adwords"] == "FAILED"
    flow.refresh_from_db()
    assert flow.state == "failed"
    assert flow.reason.startswith(
        f"failed at step testproject.demo.pipeline.crawl_adwords (job {adwords.pk})"
    )
    assert "AdWords API answered 503 Service Unavailable" in flow.reason
