"""``jobs show ID`` prints what the job's page shows; ``--json`` the same as data."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from django_jobs import queue
from django_jobs.exceptions import class_path
from django_jobs.models import Batch, Worker


def show(*args) -> str:
    out = StringIO()
    call_command("jobs", "show", *map(str, args), stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def failed_child(db):
    """A job with a parent, children, a batch, progress, a checkpoint, two
    failed attempts (with output) and a third one running."""
    parent = queue.enqueue(task_path="tests.tasks.spawn_children", args=[2])
    batch = Batch.objects.create(callback={})
    job = queue.insert(
        [([1], {"b": 2})],
        task_path="tests.tasks.add",
        queue="reports",
        parent=parent.pk,
        batch=batch.pk,
    ).ids[0]
    queue.insert([([], {})] * 2, task_path="tests.tasks.noop", parent=job)
    Worker.objects.create(id="w1", hostname="h", pid=1, concurrency=1)
    for attempt, message in ((1, "first boom"), (2, "second boom")):
        (claimed,) = queue.claim(worker_id=f"w{attempt}", queues=["reports"])
        assert claimed.pk == job
        token = claimed.claim_token
        queue.save_logs(job, token=token, attempt=attempt, text=f"said {attempt}\n")
        queue.checkpoint(job, token=token, data={"next": attempt + 1}, seconds=60)
        traceback = f"Traceback (most recent call last):\nValueError: {message}\n"
        error = queue.attempt_error(claimed, class_path(ValueError), traceback)
        queue.retry(job, token=token, error=error, delay=0)
    (claimed,) = queue.claim(worker_id="w1", queues=["reports"])
    queue.progress(job, token=claimed.claim_token, done=3, total=4, message="nearly")
    return job


def test_show_prints_the_job_page(failed_child):
    out = show(failed_child)
    lines = out.splitlines()
    assert lines[0] == f"Job {failed_child}: tests.tasks.add"
    assert "  state           reserved (running: a worker has it)" in lines
    assert "  attempts        3 of 3" in lines
    assert "  progress        3/4 (75%) nearly" in lines
    assert "  worker          w1" in lines
    assert "  all workers     w1, w2, w1" in lines
    assert any(line.startswith("  parent          #") for line in lines)
    assert f"  children        2: #{failed_child + 1}, #{failed_child + 2}" in lines
    assert any("0 of 1 finished (0 done, 0 failed)" in line for line in lines)
    started = next(line for line in lines if line.startswith("  started"))
    assert started.endswith(" ago)")
    assert " UTC (" in started
    assert 'Arguments:\n  [1]\n\nKeyword arguments:\n  {"b": 2}' in out
    assert 'Checkpoint:\n  {"next": 3}' in out
    errors = out.index("Errors, newest first:")
    assert out.index("second boom", errors) < out.index("first boom", errors)
    assert "  Attempt 2: builtins.ValueError, worker w2, 20" in out
    assert "    ValueError: second boom" in out
    assert "Output, newest first:\n  Attempt 2:\n    said 2\n  Attempt 1:" in out


def test_show_json_is_the_same_as_data(failed_child):
    document = json.loads(show(failed_child, "--json"))
    assert document["id"] == failed_child
    assert (document["state"], document["cancelling"]) == ("reserved", False)
    assert document["args"] == [1]
    assert document["kwargs"] == {"b": 2}
    assert [e["attempt"] for e in document["errors"]] == [1, 2]
    assert [log["text"] for log in document["output"]] == ["said 1\n", "said 2\n"]
    assert document["checkpoint"] == {"next": 3}
    assert document["progress"]["message"] == "nearly"
    assert document["children"] == {
        "count": 2,
        "ids": [failed_child + 1, failed_child + 2],
    }
    assert document["batch"]["jobs"] == 1
    assert document["parent"] is not None
    assert document["worker"] == "w1"
    assert document["worker_alive"] is True
    assert document["started_at"].endswith("+00:00")


def test_a_done_job_shows_its_return_value_and_leaves_out_empty_parts(db):
    job = queue.enqueue(task_path="tests.tasks.add", args=[2, 40])
    (claimed,) = queue.claim(worker_id="w")
    queue.complete(job.pk, token=claimed.claim_token, return_value=42)
    out = show(job.pk)
    assert "  state         done (finished successfully)" in out
    assert "Return value:\n  42" in out
    for absent in ("Errors", "Output", "Checkpoint", "children", "batch", "progress"):
        assert absent not in out


def test_a_job_that_does_not_exist(db):
    with pytest.raises(CommandError, match="Job 4242 does not exist in backend"):
        show(4242)
