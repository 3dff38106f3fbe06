"""``manage.py jobs``: every subcommand, and its refusals."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from django_jobs import queue
from django_jobs.models import Job, Queue, Worker
from tests import tasks


def jobs(*args):
    out, err = StringIO(), StringIO()
    call_command("jobs", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_stats_table_and_json(db):
    tasks.add.using(queue_name="emails").enqueue(1, 2)
    tasks.add.using(queue_name="emails", run_after=timedelta(hours=1)).enqueue(1, 2)
    buried = tasks.add.using(queue_name="reports").enqueue(1, 2)
    queue.bury(int(buried.id))
    queue.pause("reports")
    Worker.objects.create(id="w1", hostname="h", pid=1, concurrency=4, jobs_in_hand=1)
    out, _ = jobs("stats")
    assert "emails" in out
    assert "reports (paused)" in out
    assert "workers: 1 live (4 slots, 1 busy), 0 stale" in out
    report = json.loads(jobs("stats", "--json")[0])
    by_name = {q["name"]: q for q in report["queues"]}
    assert (by_name["emails"]["ready"], by_name["emails"]["delayed"]) == (1, 1)
    assert by_name["reports"]["buried"] == 1
    assert by_name["reports"]["paused"] is True
    assert report["total"]["ready"] == 1
    assert report["workers"] == {"live": 1, "stale": 0, "capacity": 4, "busy": 1}
    assert by_name["emails"]["oldest_ready_seconds"] >= 0
    only = json.loads(jobs("stats", "--json", "--queue", "emails")[0])
    assert [q["name"] for q in only["queues"]] == ["emails"]


def test_list_filters_and_progress(db):
    first = tasks.add.enqueue(1, 2)
    tasks.noop.using(queue_name="emails").enqueue()
    Job.objects.filter(pk=first.id).update(
        progress={"done": 3, "total": 4, "message": "nearly"}
    )
    out, _ = jobs("list", "--task", "add")
    assert "3/4 (75%) nearly" in out
    assert "noop" not in out
    listed = json.loads(jobs("list", "--json", "--queue", "emails")[0])
    assert [job["task"] for job in listed] == ["tests.tasks.noop"]
    assert json.loads(jobs("list", "--json", "--state", "delayed")[0]) == []


def listed(*args) -> list[int]:
    return [job["id"] for job in json.loads(jobs("list", "--json", *args)[0])]


def test_list_takes_every_state_the_console_filters_by(db):
    ready = int(tasks.add.enqueue(1, 2).id)
    delayed = int(tasks.add.using(run_after=timedelta(hours=1)).enqueue(1, 2).id)
    buried = int(tasks.add.enqueue(1, 2).id)
    queue.bury(buried)
    running = int(tasks.add.using(priority=100).enqueue(1, 2).id)
    (claimed,) = queue.claim(worker_id="w")
    assert claimed.pk == running
    assert listed("--state", "ready") == [ready]
    assert listed("--state", "delayed") == [delayed]
    assert listed("--state", "reserved") == listed("--state", "running") == [running]
    assert listed("--state", "buried") == listed("--state", "failed") == [buried]
    assert listed("--state", "done") == listed("--state", "successful") == []
    queue.retry(running, token=claimed.claim_token, error={"traceback": "x"})
    assert listed("--with-errors") == [running]  # failed at least once
    assert listed("--with-errors", "--state", "ready") == [running]


def test_actions(db):
    ready = tasks.add.enqueue(1, 2)
    out, _ = jobs("bury", ready.id)
    assert "1 job(s) buried, 0 refused." in out
    out, _ = jobs("retry", ready.id)
    assert "1 job(s) retried, 0 refused." in out
    out, _ = jobs("cancel", ready.id)
    assert "1 job(s) cancelled" in out
    out, _ = jobs("kick", "default")
    assert "1 job(s) kicked (ready again) in queue 'default'." in out
    out, _ = jobs("delete", ready.id)
    assert not Job.objects.exists()
    tasks.add.using(queue_name="emails").enqueue(1, 2)
    jobs("pause", "emails")
    assert Queue.objects.get(name="emails").paused
    jobs("resume", "emails")
    assert not Queue.objects.get(name="emails").paused


def test_retry_of_a_cancelled_job_clears_its_cancel_request(db):
    tasks.add.enqueue(1, 2)
    (job,) = queue.claim(worker_id="w")
    jobs("cancel", job.pk)
    queue.bury(job.pk, token=job.claim_token)  # as its worker does
    out, _ = jobs("retry", job.pk)
    assert "1 job(s) retried, 0 refused." in out
    job.refresh_from_db()
    assert (job.state, job.cancel_requested_at) == ("ready", None)


def test_pause_and_resume_refuse_an_unknown_queue(db):
    tasks.add.using(queue_name="emails").enqueue(1, 2)
    for action in ("pause", "resume"):
        with pytest.raises(CommandError) as refused:
            jobs(action, "nosuch")
        assert str(refused.value) == (
            "Unknown queue 'nosuch' in backend 'default': it is not in QUEUES and "
            "holds no job. Known queues: emails."
        )
    assert not Queue.objects.exists()
    report = json.loads(jobs("stats", "--json")[0])
    assert [q["name"] for q in report["queues"]] == ["emails"]


def test_a_phantom_queue_is_resumed_and_then_no_longer_listed(db):
    Queue.objects.create(name="nosuch", paused=True)  # left by an older pause
    assert "nosuch (paused)" in jobs("stats")[0]
    out, _ = jobs("resume", "nosuch")
    assert out == "Queue 'nosuch' resumed.\n"
    assert "nosuch" not in jobs("stats")[0]


def test_refusals_are_named_and_fail_the_command(db):
    done = tasks.add.enqueue(1, 2)
    (job,) = queue.claim(worker_id="w")
    queue.complete(job.pk, token=job.claim_token)
    err = StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("jobs", "bury", done.id, "424242", stdout=StringIO(), stderr=err)
    assert exit_info.value.code == 1
    assert f"Cannot bury job {done.id}: it is done." in err.getvalue()
    assert "Job 424242 does not exist." in err.getvalue()


def test_a_refusal_names_the_operation_asked_for(db):
    done = tasks.add.enqueue(1, 2)
    (job,) = queue.claim(worker_id="w")
    queue.complete(job.pk, token=job.claim_token)
    out, err = StringIO(), StringIO()
    with pytest.raises(SystemExit):
        call_command("jobs", "retry", done.id, stdout=out, stderr=err)
    assert err.getvalue() == f"Cannot retry job {done.id}: it is done.\n"
    assert out.getvalue() == "0 job(s) retried, 1 refused.\n"


def test_kick_refuses_an_unknown_queue(db):
    with pytest.raises(CommandError, match="Unknown queue 'nosuch'"):
        jobs("kick", "nosuch")


def test_bad_input(db):
    with pytest.raises(
        CommandError, match="--backend 'nope' is not a key of the TASKS setting"
    ):
        jobs("--backend", "nope", "stats")
    with pytest.raises(CommandError, match="--limit must be at least 1"):
        jobs("list", "--limit", "0")
    with pytest.raises(CommandError, match="must not be negative"):
        jobs("prune", "--done-older-than", "-1")
    with pytest.raises(CommandError, match="invalid choice: 'sleeping'"):
        jobs("list", "--state", "sleeping")


def test_prune(db):
    old = tasks.add.enqueue(1, 2)
    Job.objects.filter(pk=old.id).update(
        state="done", finished_at=timezone.now() - timedelta(days=10)
    )
    out, _ = jobs("prune", "--dry-run")
    assert "would delete 1 done and 0 buried job(s)." in out
    assert Job.objects.count() == 1
    out, _ = jobs("prune")
    assert "deleted 1 done and 0 buried job(s)." in out
    assert not Job.objects.exists()
