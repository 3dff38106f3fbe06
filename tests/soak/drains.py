"""Runs that a graceful stop cut short: the attempt a drain must not cost.

A SIGTERM to a worker (the chaos loop's ``term_worker``), to its process
group or to every process of it (``term_group``, as process managers send
it) must drain the worker: its runs in flight finish and record their own
outcome, or go back uncounted at the shutdown timeout. A run that instead
died of the signal, or with a fork server the signal killed, had an attempt
counted that the stop must not cost (``ChildCrashed``: "killed by signal 15
(SIGTERM)", "the worker's fork server died").

The chaos loop sends SIGTERM and SIGINT only in these stops, and picks no
worker that is stopping for anything else, so such an error on a run in
flight at a stop of its worker is never excused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .chaos import GRACEFUL_STOPS, Event
from .records import JobRecord, RunRecord

#: Clock slack between the driver's stamp of a stop and the worker's of an error.
SLACK = 0.2

#: What a job's error says when the stop signal itself ended its run.
DEATHS_BY_STOP = ("(SIGTERM)", "(SIGINT)", "the worker's fork server died")


@dataclass
class CutShort:
    job: JobRecord
    run: RunRecord
    stop: Event
    #: The first line of the error recorded for the run's attempt.
    error: str


def cut_short(jobs: list[JobRecord], events: list[Event]) -> list[CutShort]:
    """Runs in flight at a graceful stop of their worker that died of it."""
    stops = [event for event in events if event.action in GRACEFUL_STOPS]
    found = []
    for job in jobs:
        for run in job.runs:
            stop = next((e for e in stops if in_flight(run, e)), None)
            if stop is not None and (error := death_by_stop(job, run, stop.at)):
                found.append(CutShort(job, run, stop, error))
    return found


def in_flight(run: RunRecord, stop: Event) -> bool:
    """Whether ``run`` may have run on the stopped worker when the signal
    came (a run that wrote no "done" row may have ended any time later)."""
    return (
        run.supervisor in stop.hits
        and run.start <= stop.at
        and (run.done is None or run.done >= stop.at)
    )


def death_by_stop(job: JobRecord, run: RunRecord, since: float = 0.0) -> str:
    """The error of ``run``'s attempt that says a stop signal ended it, or "".

    Only errors its own worker recorded: a later run of the same attempt (the
    first was given back uncounted at the drain) may die on another worker of
    another chaos action (a fork server killed). And only errors recorded at
    or after the stop (``since``, less a little clock slack): a fork server
    that a kill ended before the stop came says "the worker's fork server
    died" too, and its worker, stopping already, may be the one the stop
    picked."""
    for error in job.errors_of(run.attempt):
        if not recorded_by(error, run):
            continue
        at = error.get("at")
        if at and datetime.fromisoformat(at).timestamp() < since - SLACK:
            continue
        text = str(error.get("traceback", ""))
        if any(mark in text for mark in DEATHS_BY_STOP):
            return text.strip().splitlines()[-1] if text.strip() else text
    return ""


def recorded_by(error: dict, run: RunRecord) -> bool:
    """Whether ``run``'s supervisor ("pid@start") recorded ``error``: a worker
    id is "host-pid-suffix". An error that names no worker is counted."""
    worker = str(error.get("worker_id") or "")
    if not worker:
        return True
    pid = worker.rsplit("-", 2)[-2] if worker.count("-") >= 2 else ""
    return pid == run.supervisor.split("@")[0]
