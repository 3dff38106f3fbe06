"""Stop signals sent to every process of a worker, as process managers do.

systemd's default ``KillMode=control-group`` signals every process of the
unit (the children too, though they sit in process groups of their own);
supervisord's ``stopasgroup``, honcho and dumb-init signal the worker's
process group (the supervisor and its fork server). Whichever processes get
SIGTERM or SIGINT, a first signal is the graceful drain and a second one the
hard stop, as if the supervisor alone had been signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal

import pytest

from django_jobs.models import Job
from tests import stop_signal_tasks
from tests.acceptance.conftest import process_exists, wait_for
from tests.models import Record
from tests.soak import procs

pytestmark = pytest.mark.database_agnostic


def worker_processes(supervisor: int) -> list[int]:
    """The supervisor and every live process descended from it."""
    everyone = procs.everything()
    found, parents = [supervisor], [supervisor]
    while parents:
        below = [p.pid for p in everyone if p.ppid in parents and p.state not in "ZX"]
        found += below
        parents = below
    return found


def signal_worker(supervisor: int, signum: int, reach: str) -> list[int]:
    """Send ``signum`` to the worker's process group ("group", as supervisord
    and honcho do) or to every process of it ("every process", as systemd's
    control-group mode does); return the pids signalled."""
    if reach == "group":
        os.killpg(supervisor, signum)
        return [supervisor]
    hit = worker_processes(supervisor)
    for pid in hit:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
    return hit


def start_waiting_job(start_worker, tmp_path, *args: str):
    """A worker running one job that waits for a file; the job, the file, the
    worker and the job's process, once it has started."""
    release = tmp_path / "release"
    waiting = stop_signal_tasks.wait_for_file.using(max_attempts=1)
    job = Job.objects.get(pk=waiting.enqueue(str(release), "waiting").id)
    worker = start_worker("--concurrency", "2", *args)
    record = wait_for(
        lambda: Record.objects.filter(key="waiting").first(), message="the job's start"
    )
    return job, release, worker, record


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
@pytest.mark.parametrize("reach", ["group", "every process"])
def test_a_first_signal_to_the_whole_worker_drains_it(
    start_worker, tmp_path, signum, reach
):
    job, release, worker, record = start_waiting_job(start_worker, tmp_path)
    hit = signal_worker(worker.pid, signum, reach)
    name = signal.Signals(signum).name
    wait_for(
        lambda: f"{name}: waiting for 1 running job(s)" in worker.output,
        message="the drain to begin",
    )
    assert process_exists(record.pid), worker.output  # the job runs on
    release.touch()
    assert worker.wait(timeout=30) == 0, worker.output
    job.refresh_from_db()
    assert (job.state, job.attempts, job.errors) == ("done", 1, []), worker.output
    assert job.return_value == "released"
    assert "fork server died" not in worker.output
    if reach == "every process":
        assert record.pid in hit  # the job's own process was signalled too


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_second_signal_to_the_whole_worker_stops_its_jobs_uncounted(
    start_worker, tmp_path, signum
):
    job, _, worker, record = start_waiting_job(
        start_worker, tmp_path, "--shutdown-timeout", "60"
    )
    signal_worker(worker.pid, signum, "every process")
    name = signal.Signals(signum).name
    wait_for(
        lambda: f"{name}: waiting for 1 running job(s)" in worker.output,
        message="the drain to begin",
    )
    assert process_exists(record.pid), worker.output
    signal_worker(worker.pid, signum, "every process")
    assert worker.wait(timeout=30) == 0, worker.output
    job.refresh_from_db()
    assert (job.state, job.attempts, job.errors) == ("ready", 0, []), worker.output
    assert f"second {name}: stopping 1 running job(s) now" in worker.output
    assert not process_exists(record.pid)


def test_programs_a_job_runs_inherit_no_ignored_or_blocked_stop_signal(start_worker):
    job = Job.objects.get(pk=stop_signal_tasks.subprocess_signals.enqueue().id)
    worker = start_worker("--burst")
    assert worker.wait(timeout=60) == 0, worker.output
    job.refresh_from_db()
    assert job.state == "done", job.errors
    for signum in (signal.SIGTERM, signal.SIGINT):
        assert signum not in job.return_value["ignored"], job.return_value
        assert signum not in job.return_value["blocked"], job.return_value


def test_a_stop_by_the_supervisor_still_sends_sigterm_to_the_jobs_programs(
    start_worker, tmp_path
):
    """A ttr timeout (like a cancel or a shutdown timeout) stops the job's
    process group with SIGTERM first: a program the job runs can clean up."""
    trapped = tmp_path / "trapped"
    hanging = stop_signal_tasks.trap_term_then_hang.using(ttr=2, max_attempts=1)
    job = Job.objects.get(pk=hanging.enqueue(str(trapped), "trap").id)
    worker = start_worker("--burst")
    record = wait_for(lambda: Record.objects.filter(key="trap").first())
    assert worker.wait(timeout=60) == 0, worker.output
    job.refresh_from_db()
    assert job.state == "buried"
    assert job.errors[0]["exception_class_path"] == "django_jobs.exceptions.JobTimeout"
    assert trapped.read_text().strip() == "TERM"
    assert not process_exists(record.pid)
    assert not process_exists(int(record.job_id))


def test_an_autoscaling_worker_watching_a_limited_job_drains_on_a_group_signal(
    start_worker, tmp_path
):
    """systemd's stop reaches the scaler's children and a watched job too."""
    job, release, worker, record = start_waiting_job(
        start_worker, tmp_path, "--concurrency", "1:4", "--max-memory", "1GB"
    )
    signal_worker(worker.pid, signal.SIGTERM, "every process")
    wait_for(
        lambda: "SIGTERM: waiting for 1 running job(s)" in worker.output,
        message="the drain to begin",
    )
    assert process_exists(record.pid), worker.output
    release.touch()
    assert worker.wait(timeout=30) == 0, worker.output
    job.refresh_from_db()
    assert (job.state, job.attempts, job.errors) == ("done", 1, []), worker.output
    assert [entry["attempt"] for entry in job.usage] == [1]
    assert "fork server died" not in worker.output
