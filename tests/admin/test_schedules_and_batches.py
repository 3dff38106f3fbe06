"""Schedules (editable, with form errors) and batches (read-only) in the console."""

from django_jobs import queue
from django_jobs.batches import batch
from django_jobs.compat import TASKS_MODULE
from django_jobs.models import Job, Schedule
from tests import tasks
from tests.admin.conftest import CHANGELIST, logged_in, staff

SCHEDULES = "/admin/django_jobs/schedule/"
BATCHES = "/admin/django_jobs/batch/"


def form(**fields):
    data = {
        "name": "hourly",
        "backend": "default",
        "enabled": "on",
        "task_path": "tests.tasks.tick",
        "cron": "0 * * * *",
        "time_zone": "UTC",
        "args": '["x"]',
        "kwargs": "{}",
        "queue": "",
        "priority": "",
    }
    data.update(fields)
    return data


def test_add_a_schedule(admin_client):
    response = admin_client.post(f"{SCHEDULES}add/", form())
    assert response.status_code == 302, response.content.decode()
    schedule = Schedule.objects.get()
    assert (schedule.cron, schedule.args, schedule.from_settings) == (
        "0 * * * *",
        ["x"],
        False,
    )
    listing = admin_client.get(SCHEDULES).content.decode()
    assert "hourly" in listing
    assert ":00:00" in listing  # the next tick is shown


def test_mistakes_are_form_errors(admin_client):
    cases = [
        ({"cron": "every hour"}, "is not a valid cron expression"),
        ({"time_zone": "Mars/Olympus"}, "is not a known time zone"),
        ({"task_path": "tests.tasks.missing"}, "cannot be imported"),
        ({"task_path": "os.system"}, f"is not a {TASKS_MODULE}.Task"),
        ({"args": "[]"}, "missing a required argument: &#x27;name&#x27;"),
        ({"backend": "nope"}, "is not a key of the TASKS setting"),
    ]
    for fields, message in cases:
        response = admin_client.post(f"{SCHEDULES}add/", form(**fields))
        assert response.status_code == 200, fields
        assert message in response.content.decode(), fields
    assert not Schedule.objects.exists()


def test_settings_schedules_can_only_be_switched(admin_client):
    schedule = Schedule.objects.create(
        name="from-settings",
        task_path="tests.tasks.tick",
        cron="* * * * *",
        args=["s"],
        from_settings=True,
    )
    page = admin_client.get(f"{SCHEDULES}{schedule.pk}/change/").content.decode()
    assert 'name="cron"' not in page
    assert 'name="enabled"' in page
    response = admin_client.post(
        f"{SCHEDULES}{schedule.pk}/change/", {"enabled": ""}, follow=True
    )
    assert response.status_code == 200
    schedule.refresh_from_db()
    assert (schedule.enabled, schedule.cron) == (False, "* * * * *")
    assert admin_client.get(f"{SCHEDULES}{schedule.pk}/delete/").status_code == 403


def test_enable_and_disable_actions_and_the_last_job(admin_client):
    schedule = Schedule.objects.create(
        name="s", task_path="tests.tasks.tick", cron="* * * * *", args=["s"]
    )
    job = queue.enqueue(task_path="tests.tasks.tick", args=["s"])
    Job.objects.filter(pk=job.pk).update(schedule=schedule, scheduled_for=job.run_at)
    listing = admin_client.get(SCHEDULES).content.decode()
    assert f"/admin/django_jobs/job/{job.pk}/change/" in listing
    admin_client.post(
        SCHEDULES, {"action": "disable", "_selected_action": [schedule.pk]}
    )
    assert not Schedule.objects.get().enabled
    admin_client.post(
        SCHEDULES, {"action": "enable", "_selected_action": [schedule.pk]}
    )
    assert Schedule.objects.get().enabled


def test_schedules_need_permissions(db):
    viewer = logged_in(staff("viewer", "view_schedule"))
    assert viewer.get(SCHEDULES).status_code == 200
    assert viewer.post(f"{SCHEDULES}add/", form()).status_code == 403
    assert logged_in(staff("nobody")).get(SCHEDULES).status_code == 403


def test_batch_progress_on_the_batch_list_and_the_job_page(admin_client):
    with batch(tasks.batch_done, kwargs={"label": "x"}) as group:
        first = tasks.add.enqueue(1, 2)
        tasks.add.enqueue(3, 4)
    (job, _) = queue.claim(worker_id="w", limit=2)
    queue.complete(job.pk, token=job.claim_token)
    listing = admin_client.get(BATCHES).content.decode()
    assert "1 of 2 finished (1 done, 0 failed)" in listing
    page = admin_client.get(f"{CHANGELIST}{first.id}/change/").content.decode()
    assert "1 of 2 finished (1 done, 0 failed)" in page
    members = admin_client.get(CHANGELIST, {"batch__id__exact": group.pk})
    assert members.status_code == 200
    assert members.context["cl"].result_count == 2


def test_queue_limits_on_the_dashboard(admin_client):
    tasks.add.using(queue_name="reports").enqueue(1, 2)
    queue.configure("reports", max_concurrency=2, rate_limit=5)
    page = admin_client.get("/admin/django_jobs/queue/").content.decode()
    assert "2 at once, 5.0/s" in page
