"""The soak's report: the figures as a table, by kind, then the evidence.

Figures marked "must be 0" are the gate: the soak fails (exit status 1) if
any of them is not 0. The others describe the run. The workflows' figures
come from ``graphs.py``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import graphs, touches
from .analysis import Findings
from .drains import cut_short
from .evidence import Evidence
from .kinds import KINDS, LANE_CONCURRENCY
from .records import EARLY, load_jobs, load_runs
from .workers import AUTOSCALING_SLOT, size

if TYPE_CHECKING:
    from .chaos import Chaos
    from .driver import Feeder, Soak
    from .instance import PrivateMariaDB, PrivatePostgres
    from .workers import Workers

JOBS = """
    SELECT id, task_path, state, attempts, max_attempts, ttr, errors
    FROM django_jobs_job ORDER BY id
"""
ROWS = """
    SELECT run, event, seq, job_id, kind, attempt, pid, pid_start, ppid, ppid_start,
           sup, sup_start, extract(epoch FROM at)::float8
    FROM soak_row
"""
#: The same on MariaDB (its session in UTC, see instance.PrivateMariaDB).
ROWS_MYSQL = ROWS.replace("extract(epoch FROM at)::float8", "UNIX_TIMESTAMP(at) + 0E0")
Row = tuple[str, object, str]


@dataclass
class Report:
    text: str
    passed: bool


def build_report(
    soak: Soak,
    instance: PrivatePostgres | PrivateMariaDB,
    workers: Workers,
    chaos: Chaos,
    feeder: Feeder,
) -> Report:
    """Read the data, compute the figures, write them down."""
    mysql = instance.vendor == "mysql"
    with instance.connect() as connection:
        rows = connection.execute(ROWS_MYSQL if mysql else ROWS).fetchall()
        job_rows = connection.execute(JOBS).fetchall()
        checkpoints = connection.execute(touches.CHECKPOINTS).fetchall()
        flows = connection.execute(graphs.FLOWS).fetchall()
        steps = connection.execute(graphs.STEPS_MYSQL if mysql else graphs.STEPS)
        steps = steps.fetchall()
        edges = connection.execute(graphs.EDGES).fetchall()
    if mysql:
        # MariaDB hands JSON columns back as text, and booleans as integers.
        rows = [tuple(row) for row in rows]
        job_rows = decoded(job_rows, [6])
        checkpoints = decoded(checkpoints, [2, 3])
        steps = [(*row[:8], bool(row[8]), row[9]) for row in decoded(steps, [9])]
    keep(soak.run_dir / "soak_rows.jsonl", rows)
    keep(soak.run_dir / "jobs.jsonl", job_rows)
    keep(soak.run_dir / "workflows.jsonl", flows)
    keep(soak.run_dir / "edges.jsonl", edges)
    runs = load_runs(rows)
    jobs = load_jobs(job_rows, runs)
    early = {row[3] for row in rows if row[1] == EARLY}
    graph = graphs.Graphs(flows, steps, edges, early, {job.id: job for job in jobs})
    events = sorted(chaos.events, key=lambda event: event.at)
    findings = Findings(
        jobs, feeder.ids, soak.unfinished, events, workers.incarnations(), soak.t0
    )
    findings.planned = graph.planned
    writer = Writer(findings, soak, feeder, checkpoints, graph)
    return Report(writer.text(), passed=not any(writer.gate().values()))


def decoded(rows: list[tuple], columns: list[int]) -> list[tuple]:
    """Rows with the JSON text of these columns parsed, as psycopg gives them."""
    return [
        tuple(
            json.loads(value) if i in columns and isinstance(value, str) else value
            for i, value in enumerate(row)
        )
        for row in rows
    ]


def keep(path: Path, rows: list[tuple]) -> None:
    """Write the rows the figures come from, one JSON array a line, for a
    person who wants to look again once the instance is gone."""
    with open(path, "w") as file:
        for row in rows:
            file.write(json.dumps(row, default=str) + "\n")


class Writer:
    def __init__(
        self,
        findings: Findings,
        soak: Soak,
        feeder: Feeder,
        checkpoints: list[tuple],
        graph: graphs.Graphs,
    ) -> None:
        self.f = findings
        self.soak = soak
        self.feeder = feeder
        self.graph = graph
        self.evidence = Evidence(findings)
        #: Touch jobs (see touches.py): attempts a blip cost them, and those
        #: done without their last checkpoint.
        self.costly = touches.costly_attempts(findings.jobs, findings.events)
        self.unsaved = touches.checkpoints_missing(checkpoints)
        #: Runs in flight at a graceful stop that died of it (see drains.py).
        self.cut_short = cut_short(findings.jobs, findings.events)

    def gate(self) -> dict[str, int]:
        f = self.f
        return {
            "lost": len(f.lost()) + len(f.missing()),
            "stuck": len(f.stuck()),
            "done with no work row": len(f.done_without_work()),
            "wrong end state": len(f.wrong_end()),
            "unexplained duplicates": len(f.unexplained()),
            "overlaps with a live worker": len(f.live_overlaps()),
            "stuck workers": len(f.stuck_workers()),
            "unexpected worker exits": len(f.unexpected_exits()),
            "runs given back uncounted": len(f.uncounted_runs()),
            "runs a graceful stop cut short": len(self.cut_short),
            "touch attempts counted, reservation never lapsed": len(self.costly),
            "touch jobs done without their last checkpoint": len(self.unsaved),
            **self.graph.gate(f),
        }

    def text(self) -> str:
        parts = [self.summary(), self.by_kind(), self.chaos(), *self.failures()]
        return "\n\n".join(part for part in parts if part) + "\n"

    # The tables

    def summary(self) -> str:
        config = self.soak.config
        verdict = "FAILED" if any(self.gate().values()) else "PASSED"
        title = (
            f"soak {verdict}: {config.minutes:g} min of chaos, {config.workers} "
            f"workers x {config.concurrency}, {config.jobs} jobs, seed {config.seed}"
        )
        if config.workers > AUTOSCALING_SLOT:
            title += (
                f" (worker {AUTOSCALING_SLOT + 1} autoscales, "
                f"--concurrency {size(AUTOSCALING_SLOT, config.concurrency)})"
            )
        title += (
            f", and one worker of the async lane ({LANE_CONCURRENCY} jobs at once "
            f"in one child)"
        )
        rows = self.job_rows() + self.duplicate_rows() + self.worker_rows()
        rows += self.touch_rows() + self.graph.rows(self.f)
        return table(title, ("figure", "count", "must be 0"), rows)

    def job_rows(self) -> list[Row]:
        f = self.f
        runs = [run for job in f.jobs for run in job.runs]
        states = Counter(job.state for job in f.jobs)
        return [
            ("jobs enqueued / rows found", f"{len(f.enqueued)} / {len(f.jobs)}", ""),
            ("runs recorded / completions (work rows)",
             f"{len(runs)} / {sum(1 for r in runs if r.done)}", ""),
            ("done / buried", f"{states['done']} / {states['buried']}", ""),
            ("lost: not done or buried, not held (or no row)",
             len(f.lost()) + len(f.missing()), "yes"),
            ("stuck: still reserved when settling ended", len(f.stuck()), "yes"),
            ("done with no work row", len(f.done_without_work()), "yes"),
            ("wrong end state (see kinds)", len(f.wrong_end()), "yes"),
        ]  # fmt: skip

    def duplicate_rows(self) -> list[Row]:
        f = self.f
        reasons = Counter(d.reason.split(" at ")[0] for d in f.duplicates if d.reason)
        excused = len(f.overlaps) - len(f.live_overlaps())
        return [
            ("duplicate completions", len(f.duplicates), ""),
            ("  explained by the duplicate window", sum(reasons.values()), ""),
            *((f"    by {reason}", n, "") for reason, n in sorted(reasons.items())),
            ("  unexplained", len(f.unexplained()), "yes"),
            ("overlapping runs of one job", len(f.overlaps), ""),
            ("  excused (worker stopped, or killed mid-row)", excused, ""),
            ("  first run's worker alive and not stopped",
             len(f.live_overlaps()), "yes"),
        ]  # fmt: skip

    def worker_rows(self) -> list[Row]:
        f = self.f
        ended = sum(1 for each in f.incarnations if each.ended is not None)
        outages = [e.until - e.at for e in f.events if e.action == "restart_database"]
        settled = self.soak.settled_in
        return [
            ("worker incarnations / exits", f"{len(f.incarnations)} / {ended}", ""),
            ("stuck workers (alive after SIGTERM + grace)",
             len(f.stuck_workers()), "yes"),
            ("unexpected worker exits", len(f.unexpected_exits()), "yes"),
            ("workers that could not start (database away)",
             len(f.refused_to_start()), ""),
            ("started runs given back uncounted, not at a SIGTERM",
             len(f.uncounted_runs()), "yes"),
            ("runs in flight at a graceful stop that died of it",
             len(self.cut_short), "yes"),
            ("enqueue batches retried", self.feeder.failures, ""),
            ("longest database outage", f"{max(outages, default=0):.2f}s", ""),
            ("settled in", "NOT SETTLED" if settled is None else f"{settled:.1f}s", ""),
        ]  # fmt: skip

    def touch_rows(self) -> list[Row]:
        hit = touches.runs_hit_by_blips(self.f.jobs, self.f.events)
        return [
            ("touch runs a database blip struck", hit, ""),
            ("  attempts counted, reservation never lapsed", len(self.costly), "yes"),
            ("  done without their last checkpoint", len(self.unsaved), "yes"),
        ]

    def by_kind(self) -> str:
        wrong = Counter(job.kind.name for job in self.f.wrong_end())
        dups = Counter(d.job.kind.name for d in self.f.duplicates if d.job.kind)
        rows = []
        for kind in KINDS.values():
            jobs = [job for job in self.f.jobs if job.kind is kind]
            if jobs:
                states = Counter(job.state for job in jobs)
                other = len(jobs) - states["done"] - states["buried"]
                runs = sum(len(job.runs) for job in jobs)
                rows.append((kind.name, len(jobs), kind.ends, states["done"],
                             states["buried"], other, runs, dups[kind.name],
                             wrong[kind.name]))  # fmt: skip
        header = ("kind", "jobs", "must end", "done", "buried", "other", "runs",
                  "dup", "wrong end")  # fmt: skip
        return table("by kind", header, rows)

    def chaos(self) -> str:
        counted = Counter(event.action for event in self.f.events)
        listed = ", ".join(f"{name} {n}" for name, n in sorted(counted.items()))
        return f"chaos actions: {len(self.f.events)} ({listed or 'none'})"

    # The evidence, for each figure of the gate that is not 0

    def failures(self) -> list[str]:
        f, e, by_id = self.f, self.evidence, self.f.by_id
        sections = []
        if lost := [by_id[i] for i in f.lost() if i in by_id]:
            sections.append(e.jobs("LOST (not done or buried, not held)", lost))
        if f.missing():
            sections.append(f"LOST (no row at all): {f.missing()[:40]}")
        if stuck := [by_id[i] for i in f.stuck() if i in by_id]:
            sections.append(e.jobs("STUCK (reserved when settling ended)", stuck))
        if jobs := f.done_without_work():
            sections.append(e.jobs("DONE WITH NO WORK ROW", jobs))
        if jobs := f.wrong_end():
            sections.append(e.jobs("WRONG END STATE", jobs))
        if dups := f.unexplained():
            notes = {d.job.id: self.duplicate_note(d) for d in dups}
            sections.append(
                e.jobs("UNEXPLAINED DUPLICATES", [d.job for d in dups], notes)
            )
        if overlaps := f.live_overlaps():
            notes = {o.job.id: self.overlap_note(o) for o in overlaps}
            jobs = [o.job for o in overlaps]
            sections.append(e.jobs("OVERLAPPING RUNS, LIVE WORKER", jobs, notes))
        if gone := f.stuck_workers():
            sections.append(e.workers("STUCK WORKERS", gone))
        if gone := f.unexpected_exits():
            sections.append(e.workers("UNEXPECTED WORKER EXITS", gone))
        sections.append(self.explained())
        if uncounted := f.uncounted_runs():
            notes = {
                job.id: self.uncounted_note(run, then) for job, run, then in uncounted
            }
            jobs = [job for job, _, _ in uncounted]
            sections.append(e.jobs("STARTED RUNS GIVEN BACK UNCOUNTED", jobs, notes))
        if self.cut_short:
            notes = {
                c.job.id: f"stopped by {c.stop.action}: {c.error}"
                for c in self.cut_short
            }
            jobs = [c.job for c in self.cut_short]
            sections.append(e.jobs("RUNS A GRACEFUL STOP CUT SHORT", jobs, notes))
        sections += self.touch_failures()
        sections += self.graph.failures(f, e)
        return sections

    def touch_failures(self) -> list[str]:
        sections = []
        if self.costly:
            notes = {c.job.id: f"attempt {c.attempt}: {c.error}" for c in self.costly}
            jobs = [c.job for c in self.costly]
            title = "TOUCH ATTEMPTS COUNTED, RESERVATION NEVER LAPSED"
            sections.append(self.evidence.jobs(title, jobs, notes))
        if self.unsaved:
            by_id = self.f.by_id
            jobs = [by_id[i] for i in self.unsaved if i in by_id]
            title = "TOUCH JOBS DONE WITHOUT THEIR LAST CHECKPOINT"
            sections.append(self.evidence.jobs(title, jobs))
        return sections

    def duplicate_note(self, d) -> str:
        t = self.evidence.t
        return (
            f"run {d.run.run[:8]} (attempt {d.run.attempt}) did the work at "
            f"{t(d.run.done)}; the success recorded is run {d.kept.run[:8]}'s "
            f"(attempt {d.kept.attempt}, work at {t(d.kept.done)}); nothing that "
            f"the contract allows hit run {d.run.run[:8]} between {t(d.window[0])} "
            f"and the next attempt at {t(d.window[1])}"
        )

    def uncounted_note(self, run, then) -> str:
        t = self.evidence.t
        return (
            f"run {run.run[:8]} started {t(run.start)} as attempt {run.attempt}; "
            f"run {then.run[:8]} started {t(then.start)} as attempt {then.attempt} "
            "again, and no SIGTERM reached the first run's worker"
        )

    def overlap_note(self, o) -> str:
        t = self.evidence.t
        return (
            f"run {o.second.run[:8]} started {t(o.second.start)} while run "
            f"{o.first.run[:8]} still ran (its last row {t(o.first.last_seen)})"
        )

    def explained(self) -> str:
        t = self.evidence.t
        lines = [
            f"  job {d.job.id} ({d.job.kind.name if d.job.kind else '?'}): attempt "
            f"{d.run.attempt} did the work at {t(d.run.done)}, next attempt at "
            f"{t(d.window[1])}: {d.reason}"
            for d in self.f.duplicates
            if d.reason
        ]
        return "explained duplicates:\n" + "\n".join(lines[:40]) if lines else ""


def table(title: str, header: tuple[str, ...], rows: list[tuple]) -> str:
    """A plain-text table: the first column left-aligned, the others right."""
    cells = [tuple(str(cell) for cell in row) for row in rows]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        first, *rest = row
        aligned = [
            cell.rjust(width) for cell, width in zip(rest, widths[1:], strict=True)
        ]
        return "  ".join([first.ljust(widths[0]), *aligned]).rstrip()

    head = line(header)
    return "\n".join([title, head, "-" * len(head), *(line(row) for row in cells)])
