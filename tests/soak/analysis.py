"""The soak's figures, computed from data: job rows, soak rows, chaos events.

Which duplicates and overlaps the contract allows is in ``window.py``; the
rest is counting: jobs lost, stuck, done with no work, in the wrong end
state; workers stuck or gone when nobody asked. The workflows' own figures
are in ``graphs.py``; it gives the end each workflow job must reach.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .chaos import GRACEFUL_STOPS, Event
from .kinds import AS_PLANNED
from .records import JobRecord, RunRecord
from .window import Duplicate, Overlap, duplicates, overlaps, overlaps_in_time
from .workers import SHUTDOWN_TIMEOUT, Incarnation


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
    #: The end each job of a workflow must reach, by id (graphs.planned_ends).
    planned: dict[int, str] = field(default_factory=dict)

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
            if j.kind
            and j.id not in unfinished
            and (ends := self.must_end(j)) is not None
            and j.state != ends
        ]

    def must_end(self, job: JobRecord) -> str | None:
        """The end ``job`` must reach: its kind's, or its graph's plan (None
        for a workflow job the plan does not know)."""
        if job.kind is None:
            return None
        if job.kind.ends == AS_PLANNED:
            return self.planned.get(job.id)
        return job.kind.ends

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

        return [
            each
            for each in self.incarnations
            if each.ended is not None
            and each.expected is None
            and self.cut_off(each)
            and not each.announced
        ]

    def cut_off(self, each: Incarnation) -> bool:
        """Whether the database went away from ``each`` while it lived."""
        return any(
            (
                event.action == "restart_database"
                or (
                    event.action == "terminate_connections"
                    and each.identity in event.hits
                )
            )
            and overlaps_in_time(event, each.started, each.ended)
            for event in self.events
        )

    def gave_up_at_stop(self, each: Incarnation) -> bool:
        """A graceful stop that ended with outcomes unrecorded, the database
        away: the worker exits 1 by design (their jobs are rescued)."""
        return (
            each.expected == "SIGTERM"
            and each.code == 1
            and each.gave_up_outcomes
            and self.cut_off(each)
        )

    def unexpected_exits(self) -> list[Incarnation]:
        """Workers that exited when nobody asked, or not as asked: with another
        exit code, or on an unhandled exception (whatever the chaos did)."""
        odd = []
        refused = {id(each) for each in self.refused_to_start()}
        for each in self.incarnations:
            if each.ended is None or each.stuck or id(each) in refused:
                continue
            if self.gave_up_at_stop(each) and not each.died_with_traceback:
                continue
            if (
                each.expected is None
                # Before its handlers are installed a worker dies of SIGTERM;
                # it holds no job yet, so that is as good as exit code 0.
                or (each.expected == "SIGTERM" and each.code not in (0, -15))
                or (each.expected == "SIGKILL" and each.code != -9)
                or each.died_with_traceback
            ):
                odd.append(each)
        return odd

    def uncounted_runs(self) -> list[tuple[JobRecord, RunRecord, RunRecord]]:
        """Runs that started and were given back without counting an attempt
        (two runs of one job share an attempt number), with the run after.

        Only a graceful stop may do that (guarantee 6: a job stopped at the
        shutdown deadline goes back uncounted); a crash of any kind counts.
        """
        found = []
        for job in self.jobs:
            for i, run in enumerate(job.runs):
                again = [r for r in job.runs[i + 1 :] if r.attempt == run.attempt]
                if again and not self.stopped_gracefully(run, again[0]):
                    found.append((job, run, again[0]))
        return found

    def stopped_gracefully(self, run: RunRecord, then: RunRecord) -> bool:
        """Whether ``run``'s worker was told to stop (SIGTERM, to it or to its
        process group) before ``then``."""
        return any(
            event.action in GRACEFUL_STOPS
            and run.supervisor in event.hits
            and run.start - SHUTDOWN_TIMEOUT - 1 <= event.at <= then.start
            for event in self.events
        )
