"""The job list: columns, filters, search, date drill-down and the capped count."""

from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs import queue
from django_jobs.admin import changelist, pagination
from django_jobs.models import Job, Worker

from .conftest import CHANGELIST, make


def listed(response) -> set[int]:
    return {job.pk for job in response.context["cl"].result_list}


def test_the_list_shows_what_an_operator_needs(admin_client, jobs):
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    assert listed(response) == {job.pk for job in jobs.values()}
    html = response.content.decode()
    for state in ("ready", "delayed", "reserved", "done", "buried"):
        assert f'<span class="jobs-state jobs-state-{state}" title="' in html
    assert '<span title="tests.tasks.add">add</span>' in html  # task short name
    assert ">1/3<" in html  # attempts / max attempts
    assert "lease ends in 4 min" in html or "lease ends in 5 min" in html
    assert "in 59 min" in html or "in 1 h 0 min" in html  # delayed run_at
    assert "priority 5" in html  # beside the queue, when not 0
    assert 'href="/admin/django_jobs/worker/w1/change/">w1</a>' in html
    assert "Queue dashboard" in html


def test_a_worker_that_is_gone_is_not_linked(admin_client, jobs):
    Worker.objects.all().delete()
    html = admin_client.get(CHANGELIST).content.decode()
    assert "/admin/django_jobs/worker/w1/change/" not in html
    assert 'w1</span> <span class="jobs-note">(gone)</span>' in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("state=ready", {"ready", "retried"}),
        ("state=delayed", {"delayed"}),
        ("state=reserved", {"reserved"}),
        ("state=done", {"done"}),
        ("state=buried", {"buried"}),
        ("queue=emails", {"done"}),
        ("queue=reports", {"reserved"}),
        ("task_path=tests.tasks.fail", {"buried", "retried"}),
        ("failed=yes", {"buried", "retried"}),
        ("failed=no", {"done", "reserved", "delayed", "ready"}),
        ("state=ready&failed=yes", {"retried"}),
        ("state=reserved&reserved_by=w1", {"reserved"}),  # a worker's jobs
        ("queue=emails&backend=default", {"done"}),  # the dashboard's links
    ],
)
def test_filters(admin_client, jobs, query, expected):
    response = admin_client.get(f"{CHANGELIST}?{query}")
    assert response.status_code == 200
    assert listed(response) == {jobs[name].pk for name in expected}


def test_filter_choices_are_the_queues_and_tasks_in_the_table(admin_client, jobs):
    html = admin_client.get(CHANGELIST).content.decode()
    for queue_name in ("default", "emails", "reports"):
        assert f'href="?queue={queue_name}"' in html
    for path in ("tests.tasks.add", "tests.tasks.fail", "tests.tasks.noop"):
        assert f'href="?task_path={path}"' in html


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("{done}", {"done"}),
        ("#{buried}", {"buried"}),
        ("tasks.fa", {"buried", "retried"}),
        ("ADD", {"done"}),
        ("again", {"retried"}),  # text of an error
        ("ValueError: boom", {"buried"}),
        ("nothing like it", set()),
    ],
)
def test_search(admin_client, jobs, term, expected):
    term = term.format(**{name: job.pk for name, job in jobs.items()})
    response = admin_client.get(CHANGELIST, {"q": term})
    assert listed(response) == {jobs[name].pk for name in expected}


def test_error_text_is_searched_in_the_most_recent_failed_jobs(
    admin_client, jobs, monkeypatch
):
    monkeypatch.setattr(changelist, "ERROR_SEARCH_WINDOW", 1)
    response = admin_client.get(CHANGELIST, {"q": "again"})  # the newest failure
    assert listed(response) == {jobs["retried"].pk}
    response = admin_client.get(CHANGELIST, {"q": "boom"})  # an older one
    assert listed(response) == set()


def test_date_hierarchy_drills_down_without_distinct_queries(admin_client, jobs):
    old = make()
    Job.objects.filter(pk=old.pk).update(
        enqueued_at=timezone.now() - timedelta(days=400)
    )
    now = timezone.localtime()
    response = admin_client.get(CHANGELIST)
    assert f"?enqueued_at__year={now.year}" in response.content.decode()
    response = admin_client.get(
        CHANGELIST, {"enqueued_at__year": now.year, "enqueued_at__month": now.month}
    )
    assert listed(response) == {job.pk for job in jobs.values()}
    assert f"enqueued_at__day={now.day}" in response.content.decode()
    ordering = response.context["cl"].queryset.query.order_by
    assert tuple(ordering) == ("-enqueued_at", "-pk")  # on the enqueued_at index
    response = admin_client.get(
        CHANGELIST,
        {
            "enqueued_at__year": now.year,
            "enqueued_at__month": now.month,
            "enqueued_at__day": now.day,
        },
    )
    assert listed(response) == {job.pk for job in jobs.values()}


def test_the_count_stops_at_the_cap(admin_client, monkeypatch, db):
    monkeypatch.setattr(pagination.CappedPaginator, "cap", 3)
    queue.insert([([], {})] * 5, task_path="tests.tasks.noop")
    response = admin_client.get(CHANGELIST, {"p": 1, "state": "ready"})
    html = response.content.decode()
    assert "more than 3 jobs" in html
    assert "more than 3 results" in html  # next to the search box
    assert "Select all matching jobs" in html
    assert response.context["cl"].paginator.count == 4


def test_the_list_is_sorted_by_id_only(admin_client, jobs):
    response = admin_client.get(CHANGELIST, {"o": "5"})  # priority: not sortable
    ids = [job.pk for job in response.context["cl"].result_list]
    assert ids == sorted(ids, reverse=True)


def test_a_viewer_sees_jobs_but_no_actions(viewer_client, jobs):
    response = viewer_client.get(CHANGELIST)
    assert response.status_code == 200
    assert listed(response) == {job.pk for job in jobs.values()}
    assert 'name="action"' not in response.content.decode()
    assert "_selected_action" not in response.content.decode()


def test_staff_without_permission_cannot_see_jobs(nobody_client, jobs):
    assert nobody_client.get(CHANGELIST).status_code == 403


def test_there_is_no_add_form(admin_client, jobs):
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    assert f"{CHANGELIST}add/" not in admin_client.get(CHANGELIST).content.decode()


def test_a_running_job_shows_its_progress(admin_client, jobs):
    Job.objects.filter(pk=jobs["reserved"].pk).update(
        progress={"done": 1, "total": 2, "message": "halfway"}
    )
    html = admin_client.get(CHANGELIST).content.decode()
    assert '<progress class="jobs-progress" value="1" max="2"></progress>' in html
    assert "1/2 halfway" in html


def test_times_show_seconds_and_how_long_ago(admin_client, jobs):
    html = admin_client.get(CHANGELIST).content.decode()
    run_at = timezone.localtime(jobs["ready"].run_at)
    assert f'<time datetime="{run_at.isoformat()}"' in html
    assert f">{run_at:%H:%M:%S}</time>" in html
    assert " s ago</span>" in html or " min ago</span>" in html


def test_the_list_explains_its_words_and_offers_to_refresh(admin_client, jobs):
    html = admin_client.get(CHANGELIST).content.decode()
    assert 'class="jobs-legend"' in html
    assert "failed for good (or cancelled), kept for inspection" in html
    assert "run a buried or delayed job again, now" in html  # retry (kick)
    assert 'id="jobs-refresh" class="jobs-refresh" data-page="jobs"' in html
    assert 'src="/static/django_jobs/refresh.js" defer' in html
    assert 'id="jobs-refresh-text"' in html
