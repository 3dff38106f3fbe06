"""What the soak reads back: each job's row and the runs its rows record.

A run is one attempt's process: its "start", "tick" and "done" rows (see
tasks.py), with the process chain that ran it as "pid@start" identities.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .kinds import Kind, kind_of

WORKER_LOST = "django_jobs.exceptions.WorkerLost"
#: The event of the row a workflow step writes when an upstream job it read
#: had not ended as planned (see flows.py and graphs.py).
EARLY = "early"
TAKEN_BACK = {WORKER_LOST, "django_jobs.exceptions.ReservationExpired"}


def identity(pid: int | None, start: int | None) -> str:
    return f"{pid}@{start}" if pid else ""


@dataclass
class RunRecord:
    run: str
    job_id: int
    attempt: int
    child: str
    fork_server: str
    supervisor: str
    start: float
    last_seen: float
    done: float | None = None

    def identities(self) -> set[str]:
        return {self.child, self.fork_server, self.supervisor} - {""}


@dataclass
class JobRecord:
    id: int
    task_path: str
    kind: Kind | None
    state: str
    attempts: int
    max_attempts: int
    ttr: int
    errors: list[dict[str, Any]]
    runs: list[RunRecord] = field(default_factory=list)

    @property
    def completions(self) -> list[RunRecord]:
        return sorted((r for r in self.runs if r.done), key=lambda r: r.done)

    def errors_of(self, attempt: int) -> list[dict[str, Any]]:
        return [e for e in self.errors if e.get("attempt") == attempt]

    def ended_at(self, attempt: int) -> list[float]:
        """When ``attempt`` was recorded as failed (by its worker or a rescuer)."""
        return [
            datetime.fromisoformat(error["at"]).timestamp()
            for error in self.errors_of(attempt)
            if error.get("at")
        ]

    def taken_back(self, attempt: int, classes: set[str] = TAKEN_BACK) -> list[float]:
        """When a rescuer took ``attempt`` back (as one of ``classes``)."""
        return [
            datetime.fromisoformat(error["at"]).timestamp()
            for error in self.errors_of(attempt)
            if error.get("exception_class_path") in classes and error.get("at")
        ]


def load_runs(rows: list[tuple]) -> dict[int, list[RunRecord]]:
    """Soak rows (run, event, seq, job_id, kind, attempt, pid, pid_start, ppid,
    ppid_start, sup, sup_start, epoch) into runs, by job, in start order."""
    runs: dict[str, RunRecord] = {}
    for run, event, _, job_id, _, attempt, *chain, at in rows:
        record = runs.get(run)
        if record is None:
            record = runs[run] = RunRecord(
                run,
                job_id,
                attempt,
                identity(chain[0], chain[1]),
                identity(chain[2], chain[3]),
                identity(chain[4], chain[5]),
                start=at,
                last_seen=at,
            )
        if event == "start":
            record.start = at
        elif event == "done":
            record.done = at
        record.last_seen = max(record.last_seen, at)
    by_job: dict[int, list[RunRecord]] = defaultdict(list)
    for record in runs.values():
        by_job[record.job_id].append(record)
    for each in by_job.values():
        each.sort(key=lambda r: r.start)
    return by_job


def load_jobs(rows: list[tuple], runs: dict[int, list[RunRecord]]) -> list[JobRecord]:
    """Job rows (id, task_path, state, attempts, max_attempts, ttr, errors)."""
    return [
        JobRecord(
            job_id,
            path,
            kind_of(path),
            state,
            attempts,
            max_attempts,
            ttr,
            list(errors or []),
            runs.get(job_id, []),
        )
        for job_id, path, state, attempts, max_attempts, ttr, errors in rows
    ]
