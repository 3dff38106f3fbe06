"""What a task can do while it runs, with real workers."""

import signal

from django_jobs.batches import batch
from django_jobs.models import Job
from tests import tasks
from tests.acceptance.conftest import wait_for
from tests.models import Record


def test_a_job_killed_at_step_3_resumes_at_step_3(start_worker):
    result = tasks.five_steps.enqueue("steps", crash_at=3)
    worker = start_worker("--burst")
    assert worker.wait(timeout=60) == 0, worker.output
    job = Job.objects.get(pk=result.id)
    assert job.state == "done"
    assert job.return_value == [3, 2]  # resumed at step 3, on attempt 2
    keys = sorted(Record.objects.values_list("key", flat=True))
    assert keys == ["steps:1:1", "steps:1:2", "steps:2:3", "steps:2:4", "steps:2:5"]
    assert job.checkpoint == {"next": 6}
    assert "killed by signal 9" not in job.errors[0]["traceback"]  # os._exit(9)
    assert "exit code 9" in job.errors[0]["traceback"]


def test_touches_keep_a_job_alive_until_it_stops_touching(start_worker):
    kept = tasks.touch_and_sleep.using(ttr=2).enqueue(steps=3, seconds=1)
    stopped = tasks.touch_and_sleep.using(ttr=2, max_attempts=1).enqueue(
        steps=2, seconds=1, then_hang=30
    )
    worker = start_worker("--burst", "--concurrency", "2")
    assert worker.wait(timeout=60) == 0, worker.output
    assert Job.objects.get(pk=kept.id).state == "done"  # ran 3 s with a ttr of 2
    job = Job.objects.get(pk=stopped.id)
    assert job.state == "buried"
    assert job.errors[0]["exception_class_path"] == "django_jobs.exceptions.JobTimeout"


def test_a_job_whose_claim_was_lost_learns_it_or_is_stopped(start_worker):
    """The task learns it from a touch (ClaimLost), unless the worker's claim
    watch (every second) sees it first and stops the job: either way the job
    stops, and its late outcome is not written over the new holder's claim.
    (That a touch raises ClaimLost is tested without processes, in
    tests/integration/test_context_and_batches.py.)"""
    result = tasks.touch_until_lost.using(max_attempts=1).enqueue("lost")
    worker = start_worker()
    wait_for(
        lambda: Job.objects.filter(pk=result.id, state="reserved").exists(),
        timeout=20,
        message="the job to start",
    )
    # What a rescue followed by another worker's claim does to the row.
    Job.objects.filter(pk=result.id).update(claim_token="another-claim")
    told = f"Cannot touch job {result.id}: this claim on it was lost"
    stopped = "its claim was lost; stopping it now"
    wait_for(
        lambda: told in worker.output or stopped in worker.output,
        timeout=20,
        message="the job to learn it lost its claim",
    )
    if told in worker.output:
        record = wait_for(
            lambda: Record.objects.filter(key__startswith="lost:").first()
        )
        assert record.key == f"lost:ClaimLost:touch:{result.id}"
    worker.send(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, worker.output
    job = Job.objects.get(pk=result.id)
    assert (job.state, job.claim_token) == ("reserved", "another-claim")


def test_progress_is_visible_while_the_job_runs(start_worker):
    result = tasks.report_progress.enqueue(5)
    worker = start_worker()
    job = wait_for(
        lambda: Job.objects.filter(pk=result.id, progress__done=3).first(),
        timeout=20,
        message="progress 3/4",
    )
    assert job.state == "reserved"
    assert (job.progress["total"], job.progress["message"]) == (4, "almost there")
    worker.send(signal.SIGTERM)
    worker.wait(timeout=30)


def test_output_reaches_the_worker_log_and_the_job(start_worker):
    result = tasks.chatty.enqueue(3)
    worker = start_worker("--burst")
    assert worker.wait(timeout=60) == 0, worker.output
    tag = f"job {result.id} tests.tasks.chatty (attempt 1):"
    assert f"{tag} printed line 0" in worker.output
    assert f"{tag} to stderr" in worker.output
    assert f"{tag} a warning from job {result.id}" in worker.output
    job = Job.objects.get(pk=result.id)
    (entry,) = job.logs
    assert entry["attempt"] == 1
    assert "printed line 2" in entry["text"]
    assert f"a warning from job {result.id}" in entry["text"]


def test_children_are_linked_to_their_parent_and_roll_back_with_it(start_worker):
    ok = tasks.spawn_children.enqueue(3)
    failed = tasks.spawn_children.using(max_attempts=1).enqueue(2, fail=True)
    worker = start_worker("--burst")
    assert worker.wait(timeout=60) == 0, worker.output
    children = Job.objects.filter(parent_id=int(ok.id))
    assert children.count() == 3
    assert set(children.values_list("state", flat=True)) == {"done"}
    assert not Job.objects.filter(parent_id=int(failed.id)).exists()


def test_batches_complete_once_with_racing_workers(start_worker):
    groups = []
    for number in range(10):
        with batch(tasks.batch_done, kwargs={"label": str(number)}) as group:
            tasks.add.enqueue_many([((i, i), {}) for i in range(4)])
        groups.append(group.pk)
    workers = [start_worker("--burst", "--concurrency", "2") for _ in range(2)]
    for worker in workers:
        assert worker.wait(timeout=120) == 0, worker.output
    callbacks = Job.objects.filter(task_path="tests.tasks.batch_done")
    assert sorted(job.kwargs["batch_id"] for job in callbacks) == sorted(groups)
    assert {job.return_value["done"] for job in callbacks} == {4}
    assert Record.objects.filter(key__startswith="callback:").count() == 10


def test_json_log_lines(start_worker):
    import json

    result = tasks.chatty.enqueue(1)
    worker = start_worker("--burst", "--json-logs")
    assert worker.wait(timeout=60) == 0, worker.output
    lines = [json.loads(line) for line in worker.output.splitlines() if line.strip()]
    about_job = [line for line in lines if line.get("job_id") == int(result.id)]
    assert {line["logger"] for line in about_job} >= {
        "django_jobs.output",
        "django_jobs.job",
    }
    printed = [line for line in about_job if line["message"].endswith("printed line 0")]
    assert printed[0]["task"] == "tests.tasks.chatty"
    assert printed[0]["attempt"] == 1


def test_output_of_jobs_run_in_a_row_stays_with_each_job(start_worker):
    results = tasks.say.enqueue_many([((f"word{i}",), {}) for i in range(12)])
    worker = start_worker("--burst", "--concurrency", "1", "--jobs-per-child", "12")
    assert worker.wait(timeout=60) == 0, worker.output
    for i, result in enumerate(results):
        (entry,) = Job.objects.get(pk=result.id).logs
        assert entry["text"] == f"saying word{i}\n"
        assert f"job {result.id} tests.tasks.say (attempt 1): saying word{i}" in (
            worker.output
        )
