"""A real browser opens a workflow: the list, its page, its graph, a job.

The same Chromium and skips as ``test_console`` (whose helpers this uses):
a machine without Chromium or Playwright skips, CI (``JOBS_REQUIRE_BROWSER=1``)
fails instead. Screenshots go to ``test-artifacts/browser/``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User

from django_jobs import queue
from django_jobs.testing import run_jobs
from django_jobs.workflows import after, workflow
from tests import workflow_tasks as w

from .test_console import ARGS, ARTIFACTS, CHROMIUM, TIMEOUT_MS, chromium, log_in
from .test_console import overflow as cut_off


def talk_pipeline():
    """Three crawls (one finds 40 pages), match, analyze; one crawl done."""
    with workflow("nightly sync", deadline=timedelta(hours=4)) as flow:
        crawls = {
            source: w.crawl.enqueue(source)
            for source in ("merchant", "adwords", "analytics")
        }
        with after(**crawls):
            matched = w.match.enqueue()
        with after(matched):
            w.analyze.enqueue()
    calls = [(["merchant", n], {}) for n in range(40)]
    step = int(crawls["merchant"].id)
    queue.insert(calls, task_path=w.page.module_path, workflow=flow.pk, step=step)
    run_jobs(tasks=[w.crawl], limit=1)
    return flow, matched


@pytest.mark.timeout(120)
def test_a_workflow_page_draws_its_graph(live_server, transactional_db):
    sync_playwright = chromium()
    User.objects.create_superuser("operator", password="secret")
    flow, matched = talk_pipeline()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=ARGS, timeout=TIMEOUT_MS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            log_in(page, live_server, "operator", "secret")

            page.goto(f"{live_server.url}/admin/django_jobs/workflow/")
            page.wait_for_selector("#result_list")
            page.screenshot(path=ARTIFACTS / "9-workflows-1280.png")
            assert cut_off(page, "#changelist .results") == 0
            assert "1 of 45 done" in page.inner_text("#result_list")

            page.click(f"a[href='/admin/django_jobs/workflow/{flow.pk}/change/']")
            graph = page.wait_for_selector("#jobs-graph")
            page.screenshot(path=ARTIFACTS / "10-workflow.png", full_page=True)
            assert graph.is_visible()
            assert page.locator("#jobs-graph a.jobs-node").count() == 45
            assert page.locator("#jobs-graph path.jobs-edge").count() == 44
            box = page.locator(f"#jobs-graph a[href$='/job/{matched.id}/change/'] rect")
            assert box.get_attribute("class") == "jobs-box jobs-fill-waiting"
            colour = box.evaluate("(rect) => getComputedStyle(rect).fill")
            assert colour == "rgb(95, 107, 122)"  # --jobs-waiting
            assert "left" in page.inner_text(".field-deadline_at")
            label = page.locator("#jobs-graph a.jobs-node").first
            underline = "(a) => getComputedStyle(a).textDecorationLine"
            assert label.evaluate(underline) == "none"  # a box, not a link text

            box.click()
            page.wait_for_selector(".field-upstream")
            page.screenshot(path=ARTIFACTS / "11-workflow-job.png", full_page=True)
            assert "merchant: crawl" in page.inner_text(".field-upstream")
            assert "and 23 more" in page.inner_text(".field-upstream")
            assert "nightly sync" in page.inner_text(".field-workflow_link")
        finally:
            browser.close()
