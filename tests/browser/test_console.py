"""A real browser uses the console: log in, look around, bury a job.

Debian's Chromium (``/usr/bin/chromium``), driven by Playwright's Python
package; Playwright's own browser download is never used. Screenshots of
every step go to ``test-artifacts/browser/``. Outside CI, a machine without
Chromium or Playwright skips the test; CI sets ``JOBS_REQUIRE_BROWSER=1``
so that a missing browser fails it instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from django_jobs import queue
from django_jobs.models import Job

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
TIMEOUT_MS = 30_000


def chromium():
    """Playwright's sync API, or a skip (a failure in CI) without a browser."""
    required = os.environ.get("JOBS_REQUIRE_BROWSER") == "1"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if required:
            raise
        pytest.skip("the playwright package is not installed")
    if not Path(CHROMIUM).exists():
        if required:
            pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    return sync_playwright


@pytest.mark.timeout(120)
def test_an_operator_buries_a_job_from_the_browser(live_server, transactional_db):
    sync_playwright = chromium()
    User.objects.create_superuser("operator", password="secret")
    job = queue.enqueue(task_path="tests.tasks.noop", queue="emails")
    queue.enqueue(task_path="tests.tasks.add", args=[1, 2])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=ARGS, timeout=TIMEOUT_MS
        )
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            page.set_default_navigation_timeout(TIMEOUT_MS)

            page.goto(f"{live_server.url}/admin/login/")
            page.fill("#id_username", "operator")
            page.fill("#id_password", "secret")
            page.click("input[type=submit]")
            page.wait_for_selector("#user-tools")
            page.screenshot(path=ARTIFACTS / "1-index.png")

            page.click("a[href='/admin/django_jobs/queue/']")
            page.wait_for_selector("#queues")
            page.wait_for_selector("#jobs-chart")
            assert "emails" in page.inner_text("#queues")
            page.screenshot(path=ARTIFACTS / "2-dashboard.png", full_page=True)

            page.click("text=All jobs")
            page.wait_for_selector("#result_list")
            page.screenshot(path=ARTIFACTS / "3-jobs.png")

            page.check(f"input.action-select[value='{job.pk}']")
            page.select_option("select[name=action]", "bury_jobs")
            page.click("button[name=index]")
            message = page.wait_for_selector("ul.messagelist li.success")
            text = message.inner_text()
            page.screenshot(path=ARTIFACTS / "4-buried.png")
            assert page.locator(
                f"tr:has(input[value='{job.pk}']) .jobs-state-buried"
            ).is_visible()
        finally:
            browser.close()

    assert text == "1 job buried."
    assert Job.objects.get(pk=job.pk).state == "buried"
