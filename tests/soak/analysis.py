"""The soak's figures, computed from data: job rows, soak rows, chaos events.

The duplicate window (DESIGN.md, guarantee 2; docs/worker.rst, "Delivery: at
least once"): a job may run again after its work committed only if its
worker died or stalled past its lease (or past WORKER_TIMEOUT, after which it
is presumed dead) before the outcome was recorded. So a duplicate completion
is *explained* only if one of these hit the earlier run:

- a SIGKILL of its child, its fork server or its supervisor, between its work
  row (less ``SLACK``: a row in flight when its process was killed) and the
  start of the next run;
- a SIGSTOP of its worker lasting at least WORKER_TIMEOUT, either while the
  run ran (from its start to the next run's start), or while the job was in
  the worker's hands: the rescuer took the attempt back (WorkerLost,
  ReservationExpired) while the worker was stopped, or within ``SLACK`` plus
  a heartbeat of its return, and the run then started late;
- the termination of its supervisor's database connections, or a restart of
  the database, in the same window as a kill, *and* the rescuer took the
  attempt back as WorkerLost during that outage or within WORKER_TIMEOUT
  (plus ``SLACK``) after it: the worker was cut off long enough to be
  presumed dead;
- its own attempt timing out: the worker recorded JobTimeout for it, and the
  work row came within ``SLACK`` of 90% of its ttr (the earliest its lease
  can run out, see Leases.renew_if_late).

Anything else is unexplained: a bug. Two runs of one job *overlap* when the
second started before the first wrote its last row. That is excused only if
the first run's worker was stopped for WORKER_TIMEOUT or more meanwhile, if
the first run was SIGKILLed with its last row in flight, or if the second run
was started late by a worker just back from such a stall (within a
heartbeat and ``SLACK``), which kills it as soon as it sees its claim lost.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .chaos import Event
from .kinds import Kind, kind_of
from .timing import OPTIONS
from .workers import Incarnation

SLACK = 0.5
KILLS = {"kill_supervisor", "kill_fork_server", "kill_child", "kill_stuck_worker"}
WORKER_LOST = "django_jobs.exceptions.WorkerLost"
TAKEN_BACK = {WORKER_LOST, "django_jobs.exceptions.ReservationExpired"}
#: How soon after a stall a worker learns that it lost its claims.
COMEBACK = OPTIONS["HEARTBEAT_INTERVAL"] + SLACK


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

    def taken_back(self, attempt: int, classes: set[str] = TAKEN_BACK) -> list[float]:
        """When a rescuer took ``attempt`` back (as one of ``classes``)."""
        return [
            datetime.fromisoformat(error["at"]).timestamp()
            for error in self.errors_of(attempt)
            if error.get("exception_class_path") in classes and error.get("at")
        ]


@dataclass
class Duplicate:
    job: JobRecord
    earlier: RunRecord
    later: RunRecord
    #: The window: the earlier run's work row and the next run's start (for
    #: runs at the same time: when the second started, when the first ended).
    window: tuple[float, float]
    reason: str | None


@dataclass
class Overlap:
    job: JobRecord
    first: RunRecord
    second: RunRecord
    excuse: str | None


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


def overlaps_in_time(event: Event, low: float, high: float) -> bool:
    return event.at <= high and event.until >= low


def describe(event: Event, t0: float) -> str:
    detail = event.detail or "hits " + ", ".join(event.hits)
    return f"{event.action} at t+{event.at - t0:.2f}s ({detail})"


def stopped_long(event: Event) -> bool:
    return event.until - event.at >= OPTIONS["WORKER_TIMEOUT"]


def explain(
    job: JobRecord, earlier: RunRecord, until: float, events: list[Event], t0: float
) -> str | None:
    """Why ``earlier``'s completion was not recorded before ``until``, if the
    contract allows one (see the module's docstring); None if nothing does.

    Of several reasons the first to happen is named: what hit the run's own
    processes (or its own timeout), and a restart of the database (which hits
    everyone) only when nothing did.
    """
    low = earlier.done - SLACK
    mine = earlier.identities()
    stalled_at = job.taken_back(earlier.attempt)
    lost_at = job.taken_back(earlier.attempt, {WORKER_LOST})
    own: list[tuple[float, str]] = []
    shared: list[tuple[float, str]] = []
    for event in events:
        hit = mine & set(event.hits)
        in_window = overlaps_in_time(event, low, until)
        if event.action in KILLS and hit and in_window:
            own.append((event.at, describe(event, t0)))
        elif event.action == "stop_worker" and hit and stopped_long(event):
            during_run = overlaps_in_time(event, earlier.start, until)
            resumed = event.until + COMEBACK
            in_hand = any(event.at <= when <= resumed for when in stalled_at)
            if during_run or in_hand:
                own.append((event.at, describe(event, t0)))
        elif in_window and event.action in (
            "terminate_connections",
            "restart_database",
        ):
            mine_cut = event.action == "restart_database" or earlier.supervisor in hit
            silent_until = event.until + OPTIONS["WORKER_TIMEOUT"] + SLACK
            if mine_cut and any(event.at <= when <= silent_until for when in lost_at):
                reasons = shared if event.action == "restart_database" else own
                reasons.append((event.at, describe(event, t0)))
    lease_out = earlier.start + 0.9 * job.ttr - SLACK
    for error in job.errors_of(earlier.attempt):
        if error.get("exception_class_path", "").endswith(".JobTimeout") and (
            earlier.done >= lease_out
        ):
            own.append((lease_out, "its attempt timed out after its work row"))
    reasons = own or shared
    return min(reasons)[1] if reasons else None


def excuse(
    first: RunRecord, second: RunRecord, events: list[Event], t0: float
) -> str | None:
    """Why ``second`` may have started while ``first`` still ran, if anything."""
    mine, theirs = first.identities(), second.identities()
    for event in events:
        if event.action == "stop_worker" and stopped_long(event):
            if mine & set(event.hits) and overlaps_in_time(
                event, first.start, second.start
            ):
                return describe(event, t0)
            if theirs & set(event.hits) and (
                event.until <= second.start <= event.until + COMEBACK
            ):
                return describe(event, t0) + ", then a late start"
        if (
            event.action in KILLS
            and mine & set(event.hits)
            and first.last_seen - SLACK <= event.at <= second.start
        ):
            return describe(event, t0) + ", its last row in flight"
    return None


def duplicates(job: JobRecord, events: list[Event], t0: float) -> list[Duplicate]:
    found = []
    done = job.completions
    for earlier, later in itertools.pairwise(done):
        if later.start < earlier.done:  # they ran at the same time
            first, second = sorted((earlier, later), key=lambda run: run.start)
            reason = excuse(first, second, events, t0)
            window = (second.start, first.last_seen)
        else:
            after = next(r for r in job.runs if r.start > earlier.done)
            reason = explain(job, earlier, after.start, events, t0)
            window = (earlier.done, after.start)
        found.append(Duplicate(job, earlier, later, window, reason))
    return found


def overlaps(job: JobRecord, events: list[Event], t0: float) -> list[Overlap]:
    found = []
    for i, first in enumerate(job.runs):
        for second in job.runs[i + 1 :]:
            if second.start < first.last_seen:
                found.append(
                    Overlap(job, first, second, excuse(first, second, events, t0))
                )
    return found


@dataclass
class Findings:
    jobs: list[JobRecord]
    enqueued: list[int]
    #: (id, state, reserved_by, reserved_until, run_at, attempts) when settling ended.
    unfinished: list[tuple]
    events: list[Event]
    incarnations: list[Incarnation]
    t0: float
    duplicates: list[Duplicate] = field(default_factory=list)
    overlaps: list[Overlap] = field(default_factory=list)

    def __post_init__(self) -> None:
        for job in self.jobs:
            self.duplicates += duplicates(job, self.events, self.t0)
            self.overlaps += overlaps(job, self.events, self.t0)

    @property
    def by_id(self) -> dict[int, JobRecord]:
        return {job.id: job for job in self.jobs}

    def missing(self) -> list[int]:
        """Enqueued, and no row at all at the end."""
        have = self.by_id
        return sorted(set(self.enqueued) - set(have))

    def lost(self) -> list[int]:
        """Not done or buried when settling ended, and held by nobody."""
        return [row[0] for row in self.unfinished if row[1] != "reserved"]

    def stuck(self) -> list[int]:
        """Still reserved when settling ended: a lease nobody finishes."""
        return [row[0] for row in self.unfinished if row[1] == "reserved"]

    def done_without_work(self) -> list[JobRecord]:
        return [j for j in self.jobs if j.state == "done" and not j.completions]

    def wrong_end(self) -> list[JobRecord]:
        unfinished = {row[0] for row in self.unfinished}
        return [
            j
            for j in self.jobs
            if j.kind and j.id not in unfinished and j.state != j.kind.ends
        ]

    def unexplained(self) -> list[Duplicate]:
        return [d for d in self.duplicates if d.reason is None]

    def live_overlaps(self) -> list[Overlap]:
        return [o for o in self.overlaps if o.excuse is None]

    def stuck_workers(self) -> list[Incarnation]:
        return [i for i in self.incarnations if i.stuck]

    def refused_to_start(self) -> list[Incarnation]:
        """Workers that exited before they started, because the database was
        down or their connection was cut meanwhile (they exit 1 with the
        error; a service manager starts them again)."""

        def cut_off(each: Incarnation, event: Event) -> bool:
            return (
                event.action == "restart_database"
                or (
                    event.action == "terminate_connections"
                    and each.identity in event.hits
                )
            ) and overlaps_in_time(event, each.started, each.ended)

        return [
            each
            for each in self.incarnations
            if each.ended is not None
            and each.expected is None
            and any(cut_off(each, event) for event in self.events)
            and not each.announced
        ]

    def unexpected_exits(self) -> list[Incarnation]:
        """Workers that exited when nobody asked, or not as asked."""
        odd = []
        refused = {id(each) for each in self.refused_to_start()}
        for each in self.incarnations:
            if each.ended is None or each.stuck or id(each) in refused:
                continue
            if (
                each.expected is None
                # Before its handlers are installed a worker dies of SIGTERM;
                # it holds no job yet, so that is as good as exit code 0.
                or (each.expected == "SIGTERM" and each.code not in (0, -15))
                or (each.expected == "SIGKILL" and each.code != -9)
            ):
                odd.append(each)
        return odd

    def uncounted_runs(self) -> list[tuple[JobRecord, int]]:
        """Attempt numbers that two runs of one job shared (an uncounted run)."""
        found = []
        for job in self.jobs:
            seen: dict[int, int] = defaultdict(int)
            for run in job.runs:
                seen[run.attempt] += 1
            found += [(job, attempt) for attempt, n in seen.items() if n > 1]
        return found
