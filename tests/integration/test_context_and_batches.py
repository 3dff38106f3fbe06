"""The job context outside a worker, children, and batch completion."""

import threading

import pytest
from django.db import connections, transaction

from django_jobs import queue
from django_jobs.batches import batch
from django_jobs.context import JobContext
from django_jobs.models import Batch, Job
from django_jobs.scope import current_job
from tests import tasks


def test_the_context_needs_a_running_job(db):
    result = tasks.add.enqueue(1, 2)
    context = JobContext(
        task_result=result,
        job_id=int(result.id),
        queue="default",
        deadline=result.enqueued_at,
    )
    with pytest.raises(
        RuntimeError, match="only be called from a job run by runworker"
    ):
        context.touch()
    with pytest.raises(TypeError, match="done must be a number"):
        context.progress("half")
    with pytest.raises(
        TypeError, match=r"checkpoint data\['when'\] cannot be stored as JSON"
    ):
        context.checkpoint({"when": object()})


def test_jobs_enqueued_while_a_job_runs_are_its_children(db):
    parent = tasks.add.enqueue(1, 1)
    running = current_job.set(int(parent.id))
    try:
        child = tasks.add.enqueue(2, 2)
    finally:
        current_job.reset(running)
    assert Job.objects.get(pk=child.id).parent_id == int(parent.id)
    assert list(Job.objects.get(pk=parent.id).children.all()) == [
        Job.objects.get(pk=child.id)
    ]


def finish(job_id, how="done"):
    (job,) = [j for j in queue.claim(worker_id="w", limit=50) if j.pk == job_id] or [
        Job.objects.get(pk=job_id)
    ]
    if how == "done":
        queue.complete(job.pk, token=job.claim_token, return_value=None)
    else:
        queue.bury(job.pk, token=job.claim_token)


def test_a_batch_runs_its_callback_once_all_jobs_finished(db):
    with batch(tasks.batch_done, kwargs={"label": "images"}) as group:
        first = tasks.add.enqueue(1, 2)
        second = tasks.add.enqueue(3, 4)
    group.refresh_from_db()
    assert (group.total, group.completed_at) == (2, None)
    (job_a, job_b) = queue.claim(worker_id="w", limit=2)
    queue.complete(job_a.pk, token=job_a.claim_token)
    assert not Job.objects.filter(task_path="tests.tasks.batch_done").exists()
    queue.bury(job_b.pk, token=job_b.claim_token)
    callback = Job.objects.get(task_path="tests.tasks.batch_done")
    assert callback.kwargs == {
        "label": "images",
        "batch_id": group.pk,
        "done": 1,
        "failed": 1,
        "job_ids": sorted([int(first.id), int(second.id)]),
    }
    group.refresh_from_db()
    assert group.callback_job_id == callback.pk
    assert queue.settle([group.pk]) == []  # never twice


def test_an_empty_batch_completes_at_once(db):
    with batch(tasks.batch_done, kwargs={"label": "nothing"}):
        pass
    assert Job.objects.get(task_path="tests.tasks.batch_done").kwargs["done"] == 0


def test_deleting_a_waiting_member_counts_as_failed(db):
    with batch(tasks.batch_done, kwargs={"label": "x"}):
        job = tasks.add.enqueue(1, 2)
    queue.delete(int(job.id))
    assert Job.objects.get(task_path="tests.tasks.batch_done").kwargs["failed"] == 1


def test_bad_callbacks_are_refused_before_anything_is_written(db):
    with (
        pytest.raises(TypeError, match="missing a required argument: 'label'"),
        batch(tasks.batch_done),
    ):
        pass
    with (
        pytest.raises(TypeError, match="given to the callback by the batch"),
        batch(tasks.batch_done, kwargs={"label": "x", "done": 3}),
    ):
        pass
    with (
        pytest.raises(TypeError, match="unexpected keyword argument 'batch_id'"),
        batch(tasks.add, args=[1, 2]),
    ):
        pass
    assert not Batch.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_batch_leaves_nothing():
    with pytest.raises(RuntimeError), transaction.atomic():
        with batch(tasks.batch_done, kwargs={"label": "x"}):
            tasks.add.enqueue(1, 2)
        raise RuntimeError
    assert not Batch.objects.exists()
    assert not Job.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_last_two_jobs_finishing_at_once_fire_the_callback_once():
    """Two workers finish the last two jobs of each batch at the same moment."""
    groups = []
    for number in range(30):
        with batch(tasks.batch_done, kwargs={"label": str(number)}) as group:
            tasks.add.enqueue(1, 1)
            tasks.add.enqueue(2, 2)
        groups.append(group.pk)
    claimed = {}
    for job in queue.claim(worker_id="w", limit=100):
        claimed.setdefault(job.batch_id, []).append(job)
    start = threading.Barrier(2)
    errors = []

    def worker(side):
        try:
            for group in groups:
                job = claimed[group][side]
                start.wait(timeout=10)  # both finish their job of this batch now
                queue.complete(job.pk, token=job.claim_token)
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(side,)) for side in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    queue.settle_pending()  # the safety net a worker's rescuer runs
    callbacks = Job.objects.filter(task_path="tests.tasks.batch_done")
    assert callbacks.count() == 30
    assert sorted(job.kwargs["batch_id"] for job in callbacks) == sorted(groups)


def test_a_touch_after_the_claim_was_lost_raises_claim_lost(db):
    """What the worker's child makes of the supervisor's replies."""
    from django_jobs.exceptions import ClaimLost, NotRecorded
    from django_jobs.worker.child import _deadline
    from django_jobs.worker.protocol import Reply

    when = "2026-11-30T10:00:00+00:00"
    assert _deadline(Reply(ok=True, deadline=when), 7, "touch").isoformat() == when
    with pytest.raises(
        ClaimLost, match="Cannot touch job 7: this claim on it was lost"
    ):
        _deadline(Reply.claim_lost(), 7, "touch")
    with pytest.raises(NotRecorded, match="job 7's checkpoint was not recorded: busy"):
        _deadline(Reply.refused("busy"), 7, "checkpoint")


def test_the_context_asks_its_holder(db):
    result = tasks.add.enqueue(1, 2)
    asked = []

    class Holder:
        def touch(self, job_id, seconds):
            asked.append(("touch", job_id, seconds))
            return result.enqueued_at

        def checkpoint(self, job_id, data):
            asked.append(("checkpoint", job_id, data))
            return result.enqueued_at

        def progress(self, job_id, report):
            asked.append(("progress", job_id, report))

    context = JobContext(
        task_result=result,
        job_id=int(result.id),
        queue="default",
        deadline=result.enqueued_at,
        holder=Holder(),
    )
    context.touch(30)
    context.checkpoint((1, 2))
    context.progress(1, 2, "half")
    job_id = int(result.id)
    assert asked == [
        ("touch", job_id, 30),
        ("checkpoint", job_id, [1, 2]),
        ("progress", job_id, {"done": 1, "total": 2, "message": "half"}),
    ]
    assert context.last_checkpoint == [1, 2]
    for bad in (0, -1, float("nan"), "soon", True):
        with pytest.raises(TypeError, match="seconds must be a number above 0"):
            context.touch(bad)
