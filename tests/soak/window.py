"""The duplicate window: which duplicates and overlaps the contract allows.

The duplicate window (DESIGN.md, guarantee 2; docs/worker.rst, "Delivery: at
least once"): a job runs again after its work committed only if its worker
died or stalled past its lease (or past WORKER_TIMEOUT, after which it is
presumed dead) before the outcome was recorded. A job with several
completions (work rows) has one whose success was recorded (the highest
attempt's) and others whose success was not: each of those is a duplicate,
*explained* only if one of these hit that run:

- a SIGKILL of its child, its fork server or its supervisor, between its work
  row (less ``SLACK``: a row in flight when its process was killed) and the
  start of the job's next attempt, and before the attempt was recorded as
  ended (a kill after a rescue is not why the job was rescued);
- a SIGSTOP of its worker lasting at least WORKER_TIMEOUT, during which (or
  within ``COMEBACK`` of its end) the rescuer took the attempt back
  (WorkerLost, ReservationExpired): the run went on, or started late, in a
  worker that no longer held the job;
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
the first run's attempt was taken back while its worker was stopped (as
above), if the first run was SIGKILLed with its last row in flight, or if
the second run is a late start in a worker just back from such a stall.
"""

from __future__ import annotations

from dataclasses import dataclass

from .chaos import Event
from .records import WORKER_LOST, JobRecord, RunRecord
from .timing import OPTIONS

SLACK = 0.5
KILLS = {"kill_supervisor", "kill_fork_server", "kill_child", "kill_stuck_worker"}
#: How soon after a stall a worker is heard of again: its next heartbeat, and
#: a rescuer's pass that was already under way.
COMEBACK = OPTIONS["HEARTBEAT_INTERVAL"] + OPTIONS["RESCUE_INTERVAL"] + SLACK


@dataclass
class Duplicate:
    job: JobRecord
    #: A completion whose success was not recorded.
    run: RunRecord
    #: The completion whose success was recorded.
    kept: RunRecord
    #: Its work row, and the start of the job's next attempt.
    window: tuple[float, float]
    reason: str | None


@dataclass
class Overlap:
    job: JobRecord
    first: RunRecord
    second: RunRecord
    excuse: str | None


def overlaps_in_time(event: Event, low: float, high: float) -> bool:
    return event.at <= high and event.until >= low


def describe(event: Event, t0: float) -> str:
    detail = event.detail or "hits " + ", ".join(event.hits)
    return f"{event.action} at t+{event.at - t0:.2f}s ({detail})"


def stopped_long(event: Event) -> bool:
    return event.until - event.at >= OPTIONS["WORKER_TIMEOUT"]


def stalls(run: RunRecord, job: JobRecord, events: list[Event]) -> list[Event]:
    """Stops of ``run``'s worker during which its attempt was taken back."""
    taken = job.taken_back(run.attempt)
    return [
        event
        for event in events
        if event.action == "stop_worker"
        and stopped_long(event)
        and run.identities() & set(event.hits)
        and any(event.at <= when <= event.until + COMEBACK for when in taken)
    ]


def explain(
    job: JobRecord, run: RunRecord, until: float, events: list[Event], t0: float
) -> str | None:
    """Why the success of ``run`` (a completion) was not recorded before the
    job's next attempt began at ``until``, if the contract allows a reason
    (see the module's docstring); None if nothing does.

    A kill counts only if it came before the attempt was recorded as ended
    (a rescue, a crash): one after that cannot be why. Of several reasons the
    strongest is named (a kill, a stall, a cut connection, its own timeout,
    a restart of the database that hit everyone), then the first.
    """
    low = run.done - SLACK
    mine = run.identities()
    ended = min(job.ended_at(run.attempt), default=float("inf"))
    lost_at = job.taken_back(run.attempt, {WORKER_LOST})
    reasons = [(1, e.at, describe(e, t0)) for e in stalls(run, job, events)]
    for event in events:
        if not overlaps_in_time(event, low, until):
            continue
        hit = mine & set(event.hits)
        if event.action in KILLS and hit and event.at <= ended:
            reasons.append((0, event.at, describe(event, t0)))
        elif event.action in ("terminate_connections", "restart_database"):
            mine_cut = event.action == "restart_database" or run.supervisor in hit
            silent_until = event.until + OPTIONS["WORKER_TIMEOUT"] + SLACK
            if mine_cut and any(event.at <= when <= silent_until for when in lost_at):
                rank = 4 if event.action == "restart_database" else 2
                reasons.append((rank, event.at, describe(event, t0)))
    lease_out = run.start + 0.9 * job.ttr - SLACK
    for error in job.errors_of(run.attempt):
        if error.get("exception_class_path", "").endswith(".JobTimeout") and (
            run.done >= lease_out
        ):
            reasons.append((3, lease_out, "its attempt timed out after its work row"))
    return min(reasons)[2] if reasons else None


def excuse(
    job: JobRecord,
    first: RunRecord,
    second: RunRecord,
    events: list[Event],
    t0: float,
) -> str | None:
    """Why ``second`` may have started while ``first`` still ran, if anything."""
    if stalled := stalls(first, job, events):
        return describe(stalled[0], t0)
    for event in stalls(second, job, events):
        if event.until <= second.start <= event.until + COMEBACK:
            return describe(event, t0) + ", then a late start"
    for event in events:
        if (
            event.action in KILLS
            and first.identities() & set(event.hits)
            and first.last_seen - SLACK <= event.at <= second.start
        ):
            return describe(event, t0) + ", its last row in flight"
    return None


def duplicates(job: JobRecord, events: list[Event], t0: float) -> list[Duplicate]:
    """Every completion but the one whose success was recorded, judged."""
    done = job.completions
    if len(done) < 2:
        return []
    kept = max(done, key=lambda run: (run.attempt, run.done))
    if job.state != "done":
        kept = done[0]
    found = []
    for run in done:
        if run is kept:
            continue
        after = [other.start for other in job.runs if other.attempt > run.attempt]
        until = min(after, default=kept.start)
        reason = explain(job, run, until, events, t0)
        found.append(Duplicate(job, run, kept, (run.done, until), reason))
    return found


def overlaps(job: JobRecord, events: list[Event], t0: float) -> list[Overlap]:
    found = []
    for i, first in enumerate(job.runs):
        for second in job.runs[i + 1 :]:
            if second.start < first.last_seen:
                reason = excuse(job, first, second, events, t0)
                found.append(Overlap(job, first, second, reason))
    return found
