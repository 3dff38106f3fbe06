"""A real browser uses the console: log in, look around, bury a job.

Debian's Chromium (``/usr/bin/chromium``), driven by Playwright's Python
package; Playwright's own browser download is never used. Screenshots of
every step go to ``test-artifacts/browser/``. Outside CI, a machine without
Chromium or Playwright skips the test; CI sets ``JOBS_REQUIRE_BROWSER=1``
so that a missing browser fails it instead.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import connections

from django_jobs import queue
from django_jobs.models import Job, Worker

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
#: The dashboard's count of ready jobs in the default backend's emails queue.
READY_EMAILS = "#queues a[href$='?queue=emails&backend=default&state=ready']"


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


def log_in(page, live_server, username: str, password: str) -> None:
    page.set_default_timeout(TIMEOUT_MS)
    page.set_default_navigation_timeout(TIMEOUT_MS)
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")


def overflow(page, selector: str) -> int:
    """How many pixels of ``selector``'s content are cut off on the right."""
    return page.evaluate(
        """(selector) => {
            const box = document.querySelector(selector);
            const right = Math.max(box.scrollWidth, box.getBoundingClientRect().width);
            return Math.max(0, Math.ceil(right - box.clientWidth),
                Math.ceil(box.getBoundingClientRect().right - window.innerWidth));
        }""",
        selector,
    )


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


@pytest.mark.timeout(180)
def test_the_console_fits_1280_px_and_refreshes_itself(live_server, transactional_db):
    """At 1,280 px, with the admin's sidebar open, no column is cut off; the
    refresh switch reloads the dashboard, and waits while jobs are selected."""
    sync_playwright = chromium()
    User.objects.create_superuser("operator", password="secret")
    job = queue.enqueue(task_path="tests.tasks.noop", queue="emails")
    queue.enqueue(task_path="tests.tasks.add", args=[1, 2], queue="reports")
    queue.bury(job.pk)
    Worker.objects.create(
        id="a-rather-long-host-name.example.internal:4242:0123456789abcdef",
        hostname="a-rather-long-host-name.example.internal",
        pid=4242,
        queues=["emails", "reports"],
        concurrency=8,
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=ARGS, timeout=TIMEOUT_MS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            log_in(page, live_server, "operator", "secret")

            page.goto(f"{live_server.url}/admin/django_jobs/queue/")
            page.wait_for_selector("#queues")
            assert page.is_visible("#nav-sidebar")  # open: the admin's default
            page.screenshot(path=ARTIFACTS / "5-dashboard-1280.png", full_page=True)
            assert overflow(page, "#queues") == 0
            status = page.locator("#queues thead th").last
            assert status.inner_text().strip().lower() == "status"
            assert status.bounding_box()["x"] + status.bounding_box()["width"] <= 1280
            for path in ("/admin/django_jobs/job/", "/admin/django_jobs/worker/"):
                page.goto(f"{live_server.url}{path}")
                page.wait_for_selector("#result_list")
                name = path.strip("/").rsplit("/", 1)[-1]
                page.screenshot(path=ARTIFACTS / f"6-{name}-1280.png")
                assert overflow(page, "#changelist .results") == 0, path

            # The refresh switch: off by default; on, it reloads the page.
            page.goto(f"{live_server.url}/admin/django_jobs/queue/")
            toggle = page.locator("#jobs-refresh-toggle")
            assert not toggle.is_checked()
            assert page.inner_text(READY_EMAILS) == "0"
            set_interval(page, 2)
            toggle.check()
            page.wait_for_selector(".jobs-refresh-status:has-text('next in')")
            in_a_thread(queue.enqueue, task_path="tests.tasks.noop", queue="emails")
            page.wait_for_function(
                "(link) => document.querySelector(link)?.innerText === '1'",
                arg=READY_EMAILS,
                timeout=TIMEOUT_MS,
            )
            assert page.locator("#jobs-refresh-toggle").is_checked()  # remembered
            page.screenshot(path=ARTIFACTS / "7-dashboard-refreshed.png")

            # On the job list, a selection holds the refresh back.
            page.goto(f"{live_server.url}/admin/django_jobs/job/")
            assert not page.locator("#jobs-refresh-toggle").is_checked()  # per page
            set_interval(page, 1)
            page.locator("#jobs-refresh-toggle").check()
            page.check(f"input.action-select[value='{job.pk}']")
            page.wait_for_selector(
                ".jobs-refresh-status:has-text('paused while jobs are selected')"
            )
            loaded = page.evaluate("performance.timeOrigin")
            page.wait_for_timeout(3000)
            assert page.evaluate("performance.timeOrigin") == loaded  # no reload
            assert page.is_checked(f"input.action-select[value='{job.pk}']")
            page.screenshot(path=ARTIFACTS / "8-jobs-refresh-held.png")
            with page.expect_navigation(timeout=TIMEOUT_MS):  # refreshes again
                page.uncheck(f"input.action-select[value='{job.pk}']")
        finally:
            browser.close()


def in_a_thread(function, **kwargs) -> None:
    """Call ``function`` away from Playwright's event loop, which Django's ORM
    refuses to run in (as a web request would, on a connection of its own)."""

    def call() -> None:
        try:
            function(**kwargs)
        finally:
            connections.close_all()

    thread = threading.Thread(target=call)
    thread.start()
    thread.join(timeout=30)


def set_interval(page, seconds: int) -> None:
    """A shorter refresh than the page's 10 s, so that the test is quick."""
    page.evaluate(
        "(s) => { document.getElementById('jobs-refresh').dataset.interval = s; }",
        str(seconds),
    )
