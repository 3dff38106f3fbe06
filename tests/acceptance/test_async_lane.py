"""The async lane with real workers (issue 23): many async jobs per child,
each on its own deadline, its own output, its own fate.

The lane's queue is "lane" (tests/settings.py: 100 jobs at once per child,
a block limit of 1.5 s); its tasks are in tests/lane_jobs.py.
"""

from __future__ import annotations

import signal
import time

import pytest
from django.db import connection

from django_jobs import queue
from django_jobs.models import Job
from tests import lane_jobs, tasks
from tests.acceptance.conftest import (
    most_at_once,
    process_exists,
    wait_for,
    worker_connections,
)
from tests.models import Record

pytestmark = pytest.mark.database_agnostic

LANE = ("--queue", "lane", "--poll-interval", "0.1")


def _state(result) -> str:
    return Job.objects.get(pk=result.id).state


def _records(key: str) -> int:
    return Record.objects.filter(key=key).count()


def test_two_hundred_jobs_awaiting_run_at_once(start_worker):
    results = [lane_jobs.nap.enqueue(f"nap-{n}", 0.5) for n in range(200)]
    worker = start_worker(*LANE, "--concurrency", "2", "--burst")
    assert worker.wait(timeout=90) == 0, worker.output
    jobs = Job.objects.filter(pk__in=[r.id for r in results])
    assert sorted(job.state for job in jobs) == ["done"] * 200
    events = [(job.started_at, 1) for job in jobs]
    events += [(job.finished_at, -1) for job in jobs]
    # Two children of 100: most of the 200 ran at the same time (one process
    # per job at --concurrency 2 would show 2).
    assert most_at_once(events) >= 100, worker.output
    assert _records("nap-0") == 1
    assert len({record.pid for record in Record.objects.all()}) <= 2
    assert "async lane: 100 at once each" in worker.output


@pytest.mark.skipif(connection.vendor != "postgresql", reason="counts pg_stat_activity")
def test_lane_jobs_share_their_childs_connection(start_worker):
    # 150 jobs that each wait, then use the ORM, at once in two children:
    # two connections for the jobs, whatever their number.
    results = [lane_jobs.nap.enqueue(f"orm-{n}", 3) for n in range(150)]
    worker = start_worker(*LANE, "--concurrency", "2", "--burst")
    wait_for(lambda: Job.objects.filter(state="reserved").count() == 150)
    seen = []
    while Job.objects.filter(state="reserved").exists():
        seen.append(worker_connections())
        time.sleep(0.05)
    seen.append(worker_connections())  # the children's, before they exit
    assert worker.wait(timeout=60) == 0, worker.output
    assert {_state(r) for r in results} == {"done"}
    # the supervisor's, its listener's, and one per lane child
    assert 3 <= max(seen) <= 4, seen


def test_a_job_past_its_ttr_is_cancelled_while_its_siblings_finish(start_worker):
    late = lane_jobs.overstay.enqueue("late")
    siblings = [lane_jobs.nap.enqueue(f"sibling-{n}", 3) for n in range(3)]
    worker = start_worker(*LANE, "--concurrency", "1", "--burst")
    assert worker.wait(timeout=60) == 0, worker.output
    job = Job.objects.get(pk=late.id)
    assert job.state == "buried"
    assert job.errors[-1]["exception_class_path"].endswith("JobTimeout")
    assert [_state(s) for s in siblings] == ["done"] * 3
    # all in one child, which the timeout did not stop
    assert len(set(Record.objects.values_list("pid", flat=True))) == 1
    assert "cancelling it in lane process" in worker.output


def test_lane_jobs_touch_checkpoint_and_report_progress_each_their_own(
    start_worker,
):
    touching = [lane_jobs.toucher.enqueue(f"touched-{n}") for n in range(5)]
    late = lane_jobs.overstay.enqueue("not-touched")  # the same ttr, no touch
    worker = start_worker(*LANE, "--concurrency", "1", "--burst")
    assert worker.wait(timeout=60) == 0, worker.output
    for result in touching:
        job = Job.objects.get(pk=result.id)
        assert (job.state, job.return_value) == ("done", 6), job.errors
        assert job.checkpoint == {"turn": 5}
        # progress is written at most twice a second per job while it runs
        assert job.progress["total"] == 6
        assert 1 <= job.progress["done"] <= 6
    assert _state(late) == "buried"


def test_a_job_that_ignores_its_cancellation_gets_its_child_killed(start_worker):
    stubborn = lane_jobs.stubborn.enqueue("stubborn")
    siblings = [lane_jobs.nap.enqueue(f"handed-back-{n}", 4) for n in range(4)]
    worker = start_worker(*LANE, "--concurrency", "1", "--burst")
    first = wait_for(lambda: Record.objects.filter(key="stubborn-started").first())
    assert worker.wait(timeout=60) == 0, worker.output
    job = Job.objects.get(pk=stubborn.id)
    assert job.state == "buried"
    assert job.errors[-1]["exception_class_path"].endswith("JobTimeout")
    assert not process_exists(first.pid)
    for n, sibling in enumerate(siblings):
        row = Job.objects.get(pk=sibling.id)
        # handed back uncounted, run again: done once, one attempt
        assert (row.state, row.attempts) == ("done", 1), row.errors
        assert _records(f"handed-back-{n}") == 1
    assert "did not end within" in worker.output


def test_a_job_blocking_the_loop_is_named_and_its_child_replaced(start_worker):
    hog = lane_jobs.hog.enqueue(2.5)
    worker = start_worker(*LANE, "--concurrency", "1", "--burst")

    def replaced() -> bool:
        return "will be replaced" in worker.output

    wait_for(replaced, timeout=30, message="the watchdog's line")
    after = lane_jobs.nap.enqueue("after-the-hog")
    assert worker.wait(timeout=60) == 0, worker.output
    assert _state(hog) == "done"
    assert _state(after) == "done"
    assert "tests.lane_jobs.hog" in worker.output
    assert "has held the event loop of lane process" in worker.output
    assert "held the event loop of lane process" in worker.output  # the step
    blocked_pid = int(worker.output.split("event loop of lane process ")[1].split()[0])
    after_pid = Record.objects.get(key="after-the-hog").pid
    assert after_pid != blocked_pid


def test_output_and_logs_of_concurrent_jobs_stay_their_own(start_worker):
    one = lane_jobs.chatter.enqueue("alpha")
    two = lane_jobs.chatter.enqueue("omega")
    worker = start_worker(*LANE, "--concurrency", "1", "--burst")
    assert worker.wait(timeout=60) == 0, worker.output
    for result, mine, theirs in ((one, "alpha", "omega"), (two, "omega", "alpha")):
        job = Job.objects.get(pk=result.id)
        text = job.logs[-1]["text"]
        assert theirs not in text, text
        for number in range(5):
            for kind in ("print", "error", "log"):
                assert f"{mine} {kind} {number}" in text, text
    # they ran at the same time: their lines interleave in the worker's log
    lines = [line for line in worker.output.splitlines() if " print " in line]
    names = [("alpha" in line) for line in lines]
    assert names != sorted(names)
    assert names != sorted(names, reverse=True)


def test_a_job_cancelled_from_the_console_stops_its_siblings_do_not(start_worker):
    target = lane_jobs.wait_here.enqueue("target")
    sibling = lane_jobs.nap.enqueue("beside", 3)
    worker = start_worker(*LANE, "--concurrency", "1", "--burst")
    started = wait_for(lambda: Record.objects.filter(key="target-started").first())
    asked = time.monotonic()
    assert queue.cancel(int(target.id)) == 1
    wait_for(lambda: _state(target) == "buried", timeout=15, message="buried")
    assert time.monotonic() - asked < 10
    job = Job.objects.get(pk=target.id)
    assert job.errors[-1]["exception_class_path"].endswith("JobCancelled")
    assert worker.wait(timeout=30) == 0, worker.output
    assert _state(sibling) == "done"
    assert Record.objects.get(key="beside").pid == started.pid  # same child


def test_a_crash_fails_the_job_that_caused_it_and_hands_back_the_others(
    start_worker,
):
    crashing = lane_jobs.crash.enqueue("crasher", 0.5)
    siblings = [lane_jobs.nap.enqueue(f"survivor-{n}", 3) for n in range(3)]
    worker = start_worker(*LANE, "--concurrency", "1", "--burst")
    assert worker.wait(timeout=60) == 0, worker.output
    job = Job.objects.get(pk=crashing.id)
    assert (job.state, job.attempts) == ("buried", 1)
    assert "exit code 3" in job.errors[-1]["traceback"]
    for n, sibling in enumerate(siblings):
        row = Job.objects.get(pk=sibling.id)
        assert (row.state, row.attempts) == ("done", 1)
        assert _records(f"survivor-{n}") == 1


def test_a_row_naming_a_sync_task_in_a_lane_queue_is_unrunnable(start_worker):
    # Written as a hand-made row would be: the task is not async.
    job = Job.objects.create(
        task_path="tests.tasks.add", queue="lane", args=[1, 2], backend="default"
    )
    worker = start_worker(*LANE, "--concurrency", "1", "--burst")
    assert worker.wait(timeout=60) == 0, worker.output
    job.refresh_from_db()
    assert (job.state, job.attempts) == ("buried", 1), job.errors
    assert "only async def" in job.errors[-1]["traceback"]


def test_a_worker_of_every_queue_leaves_the_lane_alone(start_worker):
    in_lane = lane_jobs.nap.enqueue("not-for-you")
    ordinary = tasks.add.enqueue(1, 2)
    worker = start_worker("--concurrency", "1", "--burst", "--poll-interval", "0.1")
    assert worker.wait(timeout=60) == 0, worker.output
    assert _state(ordinary) == "done"
    assert _state(in_lane) == "ready"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--queue", "lane", "--queue", "default"), "start one worker for each"),
        (("--queue", "default", "--async-concurrency", "5"), "ASYNC_QUEUES"),
        (("--queue", "lane", "--concurrency", "1:3"), "fixed number of children"),
        (("--queue", "lane", "--async-concurrency", "0"), "at least 1"),
    ],
)
def test_a_lane_worker_asked_the_impossible_says_so(start_worker, args, message):
    worker = start_worker(*args)
    assert worker.wait(timeout=60) != 0
    assert message in worker.output
    assert "Traceback" not in worker.output


def test_a_stop_signal_to_every_process_drains_the_lane(start_worker):
    # systemd's default: SIGTERM to the supervisor, its fork server and the
    # lane child alike. The jobs in flight finish; the worker exits 0.
    from tests.acceptance.test_group_stop import signal_worker

    results = [lane_jobs.nap.enqueue(f"drained-{n}", 2) for n in range(20)]
    worker = start_worker(*LANE, "--concurrency", "1", "--shutdown-timeout", "30")
    wait_for(lambda: Job.objects.filter(state="reserved").count() == 20)
    time.sleep(0.5)  # every job has started
    hit = signal_worker(worker.process.pid, signal.SIGTERM, "every process")
    assert len(hit) >= 3  # supervisor, fork server, lane child
    assert worker.wait(timeout=60) == 0, worker.output
    assert {_state(r) for r in results} == {"done"}
    assert Record.objects.filter(key__startswith="drained-").count() == 20


def test_a_lane_worker_back_from_a_stall_reclaims_its_lost_jobs_cleanly(
    start_worker,
):
    # Stopped past WORKER_TIMEOUT, the lane worker loses its jobs to a
    # rescuer; back, it cancels their old runs and, being the only worker of
    # the lane, claims them again while those may still be ending. Each must
    # end done, its work recorded once: no run mistaken for the other.
    results = [lane_jobs.nap.enqueue(f"stalled-{n}", 4) for n in range(3)]
    stalled = start_worker(*LANE, "--concurrency", "1")
    wait_for(lambda: Job.objects.filter(state="reserved").count() == 3)
    stalled.send(signal.SIGSTOP)
    try:
        start_worker("--queue", "elsewhere")  # a rescuer that runs nothing here
        wait_for(
            lambda: Job.objects.filter(state="ready").count() == 3,
            timeout=20,
            message="the jobs taken back from the stalled worker",
        )
    finally:
        stalled.send(signal.SIGCONT)
    wait_for(
        lambda: {_state(r) for r in results} == {"done"},
        timeout=40,
        message="every job done",
    )
    for n in range(3):
        assert _records(f"stalled-{n}") == 1, stalled.output
    assert "its claim was lost" in stalled.output


def test_odd_strings_in_a_project_without_logging(start_worker):
    # A new project's settings (no LOGGING), and a lane job whose output,
    # log line and return value hold NUL, lone surrogates and fake protocol.
    result = lane_jobs.odd.enqueue("odd")
    beside = lane_jobs.nap.enqueue("odd-beside", 0.5)
    worker = start_worker(
        *LANE, "--concurrency", "1", "--burst",
        DJANGO_SETTINGS_MODULE="tests.nologging_settings",
    )  # fmt: skip
    assert worker.wait(timeout=60) == 0, worker.output
    job = Job.objects.get(pk=result.id)
    assert job.state == "done", job.errors
    assert job.return_value.startswith("odd ")
    text = job.logs[-1]["text"]
    assert "nul " in text
    assert "inside" in text
    assert "forged" in text  # kept as the job's output, not taken as a message
    assert "logged" in text
    assert _state(beside) == "done"
    assert "Traceback" not in worker.output


@pytest.mark.postgres
def test_lane_jobs_touch_and_checkpoint_through_a_database_outage(start_worker, proxy):
    # Touching and checkpointing every 0.4 s while the worker's database is
    # away for 2 s: the supervisor keeps them and writes them when it is
    # back (a reservation that runs out meanwhile is a timeout, as for any
    # job: docs/tasks.rst); no job fails, none runs twice, each job's last
    # checkpoint is written.
    touching = [
        lane_jobs.toucher.using(ttr=30).enqueue(f"blip-{n}", 10) for n in range(3)
    ]
    worker = start_worker(
        *LANE, "--concurrency", "1", database_url=proxy.url(proxy.name)
    )
    wait_for(lambda: Job.objects.filter(state="reserved").count() == 3)
    time.sleep(0.8)
    proxy.down()
    time.sleep(2)
    proxy.up()
    wait_for(lambda: {_state(r) for r in touching} == {"done"}, timeout=40)
    assert "database 'default' back" in worker.output
    for n, result in enumerate(touching):
        job = Job.objects.get(pk=result.id)
        assert (job.attempts, job.checkpoint) == (1, {"turn": 9}), worker.output
        assert _records(f"blip-{n}") == 1
