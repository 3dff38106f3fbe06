"""Workflows in the console: the list, a workflow's page and its graph, the
actions, a job's place in its workflow, and what each costs in queries.

Workflows are made as an application makes them (``workflow()``,
``after()``) and run with ``run_jobs``; a fan-out is written as a running
step writes it (``queue.insert(..., step=)``), thousands of jobs in one
statement.
"""

from __future__ import annotations

import re
from datetime import timedelta

from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_jobs import queue
from django_jobs.admin.graph import TIMES
from django_jobs.admin.workflow_display import time_left
from django_jobs.models import Job, Workflow
from django_jobs.states import MEANINGS
from django_jobs.testing import run_jobs
from django_jobs.workflows import after, workflow
from tests import workflow_tasks as w

from .conftest import CHANGELIST, DASHBOARD, logged_in, staff

WORKFLOWS = "/admin/django_jobs/workflow/"
PAGE = "tests.workflow_tasks.page"


def pipeline(name: str = "nightly sync", **options):
    """``workflow_tasks.pipeline`` (its row, crawls and match)."""
    return w.pipeline(name, **options)[:3]


def fan_out(pages: int, name: str = "crawl"):
    """A crawl that found ``pages`` pages, then a fan-in step after it."""
    with workflow(name) as flow:
        crawled = w.crawl.enqueue("merchant")
        with after(crawled):
            matched = w.match.enqueue()
    calls = [(["merchant", n], {}) for n in range(pages)]
    queue.insert(calls, task_path=PAGE, workflow=flow.pk, step=int(crawled.id))
    return flow, crawled, matched


def page_of(flow) -> str:
    return f"{WORKFLOWS}{flow.pk}/change/"


def said(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def act(client, action: str, flows, url: str = WORKFLOWS):
    data = {"action": action, "index": 0, "_selected_action": [f.pk for f in flows]}
    return client.post(url, data)


# The list


def test_the_list_shows_each_workflow_with_its_counts(admin_client, db):
    flow, _, _ = pipeline(deadline=timedelta(hours=4))
    run_jobs(tasks=[w.crawl], limit=1)
    response = admin_client.get(WORKFLOWS)
    assert response.status_code == 200
    html = response.content.decode()
    assert "nightly sync" in html
    assert "jobs-workflow-running" in html
    assert "1 of 5 done" in html
    assert re.search(r"2 ready</span>", html)  # the other crawls
    assert re.search(r"2 waiting</span>", html)  # match and analyze
    assert f"?workflow={flow.pk}&amp;state=waiting" in html
    assert re.search(r"(3 h 59 min|4 h 0 min) left", html)  # before the deadline


def test_counts_link_to_the_workflows_jobs(admin_client, db):
    flow, _, _ = pipeline()
    other, _, _ = pipeline("other")
    run_jobs(tasks=[w.crawl])
    listed = admin_client.get(CHANGELIST, {"workflow": flow.pk, "state": "waiting"})
    assert [job.workflow_id for job in listed.context["cl"].result_list] == [flow.pk]
    assert listed.context["cl"].result_count == 1  # analyze; match is ready
    everything = admin_client.get(CHANGELIST, {"workflow": other.pk})
    assert everything.context["cl"].result_count == 5
    assert f"#{other.pk}" in everything.content.decode()  # the active filter


def test_a_failed_workflow_says_why_on_the_list_and_its_page(admin_client, db):
    flow, crawls, _ = pipeline(fail="adwords")
    run_jobs(raise_errors=False)
    why = f"failed at step tests.workflow_tasks.crawl (job {crawls['adwords'].id})"
    for url in (WORKFLOWS, page_of(flow)):
        html = admin_client.get(url).content.decode()
        assert "jobs-workflow-failed" in html
        assert why in html
        assert "RuntimeError: adwords answered 503" in html
        assert "2 of 5 done" in html
        assert re.search(r"3 buried</span>", html)  # the crawl, and what it ended
    assert "jobs-fill-buried" in html  # its graph


def test_filter_by_state_and_search_by_name_or_id(admin_client, db):
    running, _, _ = pipeline("nightly sync")
    cancelled, _, _ = pipeline("hourly export")
    queue.workflows.cancel(cancelled.pk)

    def listed(**params) -> list[int]:
        response = admin_client.get(WORKFLOWS, params)
        return [flow.pk for flow in response.context["cl"].result_list]

    assert listed() == [cancelled.pk, running.pk]  # newest first
    assert listed(state__exact="cancelled") == [cancelled.pk]
    assert listed(state__exact="running") == [running.pk]
    assert listed(q="export") == [cancelled.pk]
    assert listed(q=f"#{running.pk}") == [running.pk]
    assert listed(name="nightly sync") == [running.pk]


def test_the_list_counts_every_workflow_in_one_query(admin_client, db):
    for n in range(2):
        pipeline(f"small {n}")
    few = queries(admin_client, WORKFLOWS)
    for n in range(20):
        fan_out(30, name=f"large {n}")
    assert queries(admin_client, WORKFLOWS) == few
    assert few <= 8


# Actions


def test_cancel_a_workflow(admin_client, db):
    flow, _, _ = pipeline()
    (claimed,) = queue.claim(worker_id="w", limit=1)  # a crawl runs
    response = act(admin_client, "cancel_workflows", [flow])
    assert response.status_code == 302
    assert said(response) == [
        "1 workflow cancelled (5 jobs cancelled or asked to stop).",
        "Running jobs are stopped by their worker within a few seconds, then "
        "buried as cancelled.",
    ]
    assert Workflow.objects.get(pk=flow.pk).state == "cancelled"
    assert Job.objects.get(pk=claimed.pk).cancel_requested_at is not None
    unstarted = Job.objects.filter(workflow=flow).exclude(pk=claimed.pk)
    assert set(unstarted.values_list("state", flat=True)) == {"buried"}


def test_cancel_reports_what_it_skipped(admin_client, db):
    running, _, _ = pipeline("running")
    finished, _, _ = pipeline("cancelled already")
    queue.workflows.cancel(finished.pk)
    response = act(admin_client, "cancel_workflows", [running, finished])
    assert said(response) == [
        "1 workflow cancelled (5 jobs cancelled or asked to stop), "
        "1 skipped (not running)."
    ]
    states = set(Job.objects.filter(workflow=running).values_list("state", flat=True))
    assert states == {"buried"}


def test_retry_the_failed_steps(admin_client, db):
    flow, crawls, matched = pipeline(fail="adwords")
    fine, _, _ = pipeline("fine")
    run_jobs(raise_errors=False)
    Job.objects.filter(pk=crawls["adwords"].id).update(kwargs={"fail": False})
    response = act(admin_client, "retry_failed_steps", [flow, fine])
    assert said(response) == [
        "1 failed step retried in 1 workflow, 1 skipped (no failed step to retry)."
    ]
    assert Workflow.objects.get(pk=flow.pk).state == "running"
    assert Job.objects.get(pk=matched.id).state == "waiting"
    run_jobs()
    assert Workflow.objects.get(pk=flow.pk).state == "succeeded"


def test_a_cancelled_workflow_has_no_failed_step_to_retry(admin_client, db):
    flow, _, _ = pipeline()
    queue.workflows.cancel(flow.pk)
    response = act(admin_client, "retry_failed_steps", [flow])
    assert said(response) == [
        "0 failed steps retried in 0 workflows, 1 skipped (no failed step to retry)."
    ]
    assert Workflow.objects.get(pk=flow.pk).state == "cancelled"


def test_actions_on_the_workflows_page(admin_client, db):
    flow, _, _ = pipeline()
    url = page_of(flow)
    html = admin_client.get(url).content.decode()
    assert 'name="CHANGE_FORM-action"' in html
    response = admin_client.post(
        url,
        {
            "CHANGE_FORM-action": "cancel_workflows",
            "_selected_action": [str(flow.pk)],
        },
    )
    assert response.status_code == 302
    assert Workflow.objects.get(pk=flow.pk).state == "cancelled"


def test_actions_need_change_workflow(db):
    flow, _, _ = pipeline()
    viewer = logged_in(staff("viewer", "view_workflow"))
    html = viewer.get(WORKFLOWS).content.decode()
    assert "cancel_workflows" not in html
    assert act(viewer, "cancel_workflows", [flow]).status_code == 403
    assert Workflow.objects.get(pk=flow.pk).state == "running"
    operator = logged_in(staff("operator", "view_workflow", "change_workflow"))
    assert act(operator, "cancel_workflows", [flow]).status_code == 302
    assert Workflow.objects.get(pk=flow.pk).state == "cancelled"


def test_who_sees_workflows(db):
    flow, _, _ = pipeline()
    job_viewer = logged_in(staff("jobs", "view_job"))
    assert job_viewer.get(WORKFLOWS).status_code == 200
    assert job_viewer.get(page_of(flow)).status_code == 200
    nobody = logged_in(staff("nobody"))
    assert nobody.get(WORKFLOWS).status_code == 403
    assert nobody.get(page_of(flow)).status_code == 403


def test_the_page_is_read_only(admin_client, db):
    flow, _, _ = pipeline()
    response = admin_client.get(page_of(flow))
    assert 'name="_save"' not in response.content.decode()
    posted = admin_client.post(page_of(flow), {"name": "renamed", "_save": "1"})
    assert posted.status_code == 403
    assert admin_client.get(f"{WORKFLOWS}add/").status_code == 403
    assert admin_client.get(f"{WORKFLOWS}{flow.pk}/delete/").status_code == 403
    assert Workflow.objects.get(pk=flow.pk).name == "nightly sync"


# A workflow's page and its graph


def boxes(html: str) -> list[str]:
    return re.findall(r'<a class="jobs-node" href="([^"]+)" data-jobs="(\d+)"', html)


def test_the_page_draws_every_job_linked_to_its_page(admin_client, db):
    flow, crawls, matched = pipeline(deadline=timedelta(hours=1))
    run_jobs(tasks=[w.crawl], limit=1)
    response = admin_client.get(page_of(flow))
    html = response.content.decode()
    drawing = response.context["graph"]
    assert not drawing.grouped
    layer = {box.first: box.layer for box in drawing.boxes}
    assert [layer[int(c.id)] for c in crawls.values()] == [0, 0, 0]
    assert layer[int(matched.id)] == 1
    assert max(layer.values()) == 2  # analyze
    assert len(boxes(html)) == 5
    assert f'href="{CHANGELIST}{matched.id}/change/"' in html
    assert html.count('marker-end="url(#jobs-arrow)"') == 4  # 3 crawls, match
    assert ">merchant</text>" in html  # the edges' names
    assert "jobs-fill-done" in html
    assert "jobs-fill-waiting" in html
    assert re.search(r"(59|60) min left|1 h 0 min left", html)
    assert "1 of 5 done" in html


def test_a_fan_out_of_5000_pages_is_drawn_as_a_handful_of_boxes(admin_client, db):
    flow, _crawled, _matched = fan_out(5000)
    response = admin_client.get(page_of(flow))
    html = response.content.decode()
    drawing = response.context["graph"]
    assert drawing.grouped
    assert sorted(box.size for box in drawing.boxes) == [1, 1, 5000]
    pages = next(box for box in drawing.boxes if box.size == 5000)
    assert pages.counts["ready"] == 5000
    assert f"?workflow={flow.pk}&amp;task_path={PAGE}" in html
    assert f"page {TIMES}5000" in html
    assert f"{TIMES}5000</text>" in html  # the arrow from the pages to match
    assert len(boxes(html)) == 3
    assert "0 of 5002 done" in html


def test_the_page_costs_the_same_queries_at_any_size(admin_client, db):
    small, _, _ = fan_out(3, name="small")
    large, _, _ = fan_out(1000, name="large")
    assert queries(admin_client, page_of(small)) == queries(
        admin_client, page_of(large)
    )
    assert queries(admin_client, page_of(large)) <= 10


# A job's place in its workflow


def test_a_jobs_page_shows_its_workflow_upstream_and_downstream(admin_client, db):
    flow, crawls, matched = pipeline()
    html = admin_client.get(f"{CHANGELIST}{matched.id}/change/").content.decode()
    assert f'href="{page_of(flow)}">nightly sync #{flow.pk}</a>' in html
    assert f'merchant: <a href="{CHANGELIST}{crawls["merchant"].id}/change/">' in html
    assert "Waits for" in html
    assert "Waited for by" in html
    crawl = admin_client.get(f"{CHANGELIST}{crawls['merchant'].id}/change/")
    assert f'<a href="{CHANGELIST}{matched.id}/change/">match #{matched.id}' in (
        crawl.content.decode()
    )
    alone = queue.enqueue(task_path="tests.tasks.noop")
    html = admin_client.get(f"{CHANGELIST}{alone.pk}/change/").content.decode()
    assert "Waits for" not in html
    assert ">Workflow<" not in html


def test_a_job_ended_by_a_failure_names_it(admin_client, db):
    _, crawls, matched = pipeline(fail="adwords")
    run_jobs(raise_errors=False)
    html = admin_client.get(f"{CHANGELIST}{matched.id}/change/").content.decode()
    assert "Ended by the failure of" in html
    assert f'<a href="{CHANGELIST}{crawls["adwords"].id}/change/">crawl' in html


def test_a_fan_in_lists_some_upstream_jobs_and_links_to_the_rest(admin_client, db):
    _, _, matched = fan_out(50)
    html = admin_client.get(f"{CHANGELIST}{matched.id}/change/").content.decode()
    assert f"?upstream_of={matched.id}" in html
    assert "and 31 more" in html  # 51 upstream jobs, 20 shown
    listed = admin_client.get(CHANGELIST, {"upstream_of": matched.id})
    assert listed.context["cl"].result_count == 51


def test_cancel_on_the_job_list_ends_waiting_jobs(admin_client, db):
    flow, _, matched = pipeline()
    data = {"action": "cancel_jobs", "index": 0, "_selected_action": [matched.id]}
    response = admin_client.post(CHANGELIST, data)
    assert said(response) == ["1 job cancelled."]
    assert Job.objects.get(pk=matched.id).state == "buried"
    analyzed = Job.objects.get(workflow=flow, task_path="tests.workflow_tasks.analyze")
    assert (analyzed.state, analyzed.blocked_by_id) == ("buried", int(matched.id))


# The dashboard


def test_the_dashboard_counts_waiting_jobs(admin_client, db):
    pipeline()
    response = admin_client.get(DASHBOARD)
    row = next(r for r in response.context["rows"] if r.name == "default")
    assert (row.waiting, row.ready) == (2, 3)
    html = response.content.decode()
    assert "?queue=default&amp;backend=default&amp;state=waiting" in html
    assert f'title="{MEANINGS["waiting"]}">waiting</span>' in html
    assert response.context["totals"]["waiting"] == 2
    for state in ("waiting", "ready", "done", "buried"):  # the legend's colours
        assert f'class="jobs-state jobs-state-{state}"' in html
        assert f".jobs-state-{state} {{ background: var(--jobs-{state}); }}" in html


def test_the_dashboard_lists_running_workflows_nearest_deadline_first(admin_client, db):
    later, _, _ = pipeline("later", deadline=timedelta(hours=4))
    sooner, _, _ = pipeline("sooner", deadline=timedelta(minutes=30))
    pipeline("no deadline")
    ended, _, _ = pipeline("ended")
    queue.workflows.cancel(ended.pk)
    response = admin_client.get(DASHBOARD)
    shown = response.context["workflows"]
    names = [row["workflow"].name for row in shown["rows"]]
    assert names == ["sooner", "later", "no deadline"]
    assert shown["total"] == 3
    html = response.content.decode()
    assert "3 running workflows" in html
    assert re.search(r"(29|30) min left", html)
    assert f'href="{page_of(sooner)}"' in html
    assert f'href="{page_of(later)}"' in html


def test_time_left_is_said_in_words(db):
    now = timezone.now()
    flow = Workflow(name="x", deadline=now + timedelta(minutes=90))
    assert time_left(flow, now) == "1 h 30 min left"
    flow.deadline = now - timedelta(seconds=5)
    assert time_left(flow, now) == "missed 5 s ago"
    flow.state = "failed"
    assert time_left(flow, now) == ""
