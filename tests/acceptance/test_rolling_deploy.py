"""A deploy reaches the web servers before the workers: jobs wait for it.

The web side enqueues a job for a task its new code defines; a worker still
running the old code cannot import it. The job is tried again, its attempts
not counted, for IMPORT_GRACE seconds (3 in the test settings), and runs as
soon as the worker can import it; only then is it buried.
"""

from django_jobs import queue
from django_jobs.models import Job
from tests.acceptance.conftest import wait_for

NEW_MODULE = """
from django_jobs.compat import task


@task
def greet(name):
    return f"hello {name}, from the new code"
"""


def test_a_task_that_arrives_with_a_deploy_runs_once_it_is_there(
    start_worker, tmp_path
):
    job = queue.enqueue(task_path="deployed_later.greet", args=["ada"])
    worker = start_worker("--poll-interval", "0.2", PYTHONPATH=str(tmp_path))
    wait_for(
        lambda: Job.objects.get(pk=job.pk).errors,
        message="a first try that could not import the task",
    )
    first = Job.objects.get(pk=job.pk)
    assert (first.state, first.attempts) == ("ready", 0)
    error = first.errors[0]
    assert error["exception_class_path"] == "django_jobs.exceptions.TaskNotImportable"
    assert (
        "'deployed_later.greet' cannot be imported in this worker" in error["traceback"]
    )
    assert "A deploy may be in progress" in error["traceback"]

    (tmp_path / "deployed_later.py").write_text(NEW_MODULE)  # the deploy arrives

    wait_for(lambda: Job.objects.get(pk=job.pk).state == "done", timeout=20)
    done = Job.objects.get(pk=job.pk)
    assert done.return_value == "hello ada, from the new code"
    assert done.attempts == 1  # the tries that could not import did not count
    assert "tried again in" in worker.output


def test_a_task_that_never_arrives_is_buried_after_the_grace(start_worker):
    job = queue.enqueue(task_path="tests.removed_module.task", max_attempts=1)
    worker = start_worker("--poll-interval", "0.2")
    wait_for(lambda: Job.objects.get(pk=job.pk).state == "buried", timeout=30)
    buried = Job.objects.get(pk=job.pk)
    assert len(buried.errors) >= 2  # tried more than once, even with 1 attempt
    assert {e["exception_class_path"] for e in buried.errors} == {
        "django_jobs.exceptions.TaskNotImportable"
    }
    assert "buried: not importable for" in worker.output
