"""The soak's touch jobs: what a database blip may cost them, and what not.

A touch job (``tasks.touch``) touches or checkpoints every 0.2 s, often for
longer than its ttr. The chaos restarts the database and ends the workers'
connections under it; a worker keeps a touch or a checkpoint that it cannot
write while the job's reservation has time, and writes it once the database
is back (docs/tasks.rst, "Long jobs: touch"). So a blip must cost such a job
no attempt. An attempt of a touch job may end in an error only when its
reservation lapsed or a process of its run was killed:

- taken back by a rescuer (WorkerLost, ReservationExpired): its worker was
  presumed dead, or its reservation ran out;
- JobTimeout, when an outage of the database or a stop of its worker
  overlapped one of the attempt's runs (its reservation ran out meanwhile);
- ChildCrashed, when a kill hit one of the attempt's runs.

Any other error (NotRecorded or ClaimLost from a touch, anything the job
raised) is an attempt counted though the reservation never lapsed. And a
touch job that ended done has its last checkpoint stored: one kept while the
database was away is written before the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

from .chaos import Event
from .records import TAKEN_BACK, JobRecord, RunRecord
from .window import KILLS, SLACK, overlaps_in_time

KIND = "touch"
#: Chaos actions that take a worker's database away.
OUTAGES = {"restart_database", "terminate_connections"}
#: Chaos actions that stop a worker (it cannot renew anything meanwhile).
STALLS = {"stop_worker"}
#: The checkpoint rows of touch jobs: (id, state, return value, checkpoint).
CHECKPOINTS = """
    SELECT id, state, return_value, checkpoint FROM django_jobs_job
    WHERE task_path = 'tests.soak.tasks.touch' ORDER BY id
"""


@dataclass
class Costly:
    """An attempt of a touch job that ended in an error nothing excuses."""

    job: JobRecord
    attempt: int
    error: str


def touch_jobs(jobs: list[JobRecord]) -> list[JobRecord]:
    return [job for job in jobs if job.kind is not None and job.kind.name == KIND]


def hit_by(run: RunRecord, events: list[Event], actions: set[str]) -> list[Event]:
    """The events among ``actions`` that struck ``run`` while it ran: a
    restart of the database strikes everyone, the others their targets."""
    return [
        event
        for event in events
        if event.action in actions
        and overlaps_in_time(event, run.start - SLACK, run.last_seen + SLACK)
        and (event.action == "restart_database" or run.identities() & set(event.hits))
    ]


def excused(job: JobRecord, error: dict, events: list[Event]) -> bool:
    """Whether ``error`` ended its attempt because the reservation lapsed or
    a process of the attempt's run was killed."""
    path = str(error.get("exception_class_path", ""))
    runs = [run for run in job.runs if run.attempt == error.get("attempt")]
    if path in TAKEN_BACK:
        return True
    if path.endswith(".JobTimeout"):
        return any(hit_by(run, events, OUTAGES | STALLS) for run in runs)
    if path.endswith(".ChildCrashed"):
        return any(hit_by(run, events, KILLS) for run in runs)
    return False


def costly_attempts(jobs: list[JobRecord], events: list[Event]) -> list[Costly]:
    """Attempts of touch jobs counted though their reservation never lapsed."""
    return [
        Costly(job, error.get("attempt"), summary(error))
        for job in touch_jobs(jobs)
        for error in job.errors
        if not excused(job, error, events)
    ]


def runs_hit_by_blips(jobs: list[JobRecord], events: list[Event]) -> int:
    """Runs of touch jobs that a database outage struck while they ran."""
    return sum(
        1
        for job in touch_jobs(jobs)
        for run in job.runs
        if hit_by(run, events, OUTAGES)
    )


def checkpoints_missing(rows: list[tuple]) -> list[int]:
    """Touch jobs done without their last checkpoint (rows of CHECKPOINTS).

    A run returns its last step; it checkpointed every even step, so its
    last checkpoint is the even step at or below it.
    """
    missing = []
    for job_id, state, step, checkpoint in rows:
        if state != "done" or not isinstance(step, int) or step < 2:
            continue
        if checkpoint != {"step": step - step % 2}:
            missing.append(job_id)
    return missing


def summary(error: dict) -> str:
    lines = str(error.get("traceback") or "").strip().splitlines()
    return f"{error.get('exception_class_path')}: {lines[-1][:160] if lines else ''}"
