"""The workflow kind's figures (see flows.py), from the rows at the end.

Each graph's plan is read from its structure, not from how it ended: a
``broken`` crawl, and every job that waits for it (directly or not) and does
not run anyway, must end buried; every other job must end done; and the
workflow must fail if it has a broken crawl, else succeed. Then:

- every workflow ended, and one that failed says why;
- no job is left waiting whose upstream jobs have all ended (the rescuer
  recounts such a job; settling gave it time);
- no job ran before each of its upstream jobs ended: the start of the
  dependent's first run against the end of the upstream job from its row
  (``finished_at``: its last attempt's, which a retry cannot confuse). The
  first run's "start" row is the child's, written after its claim
  committed; the claim's own stamp (``started_at``) is read before the
  claim is sent, so it may fall a little before a release that committed
  meanwhile (the table shows by how much, as a figure that is not gated);
- no step read an upstream job that had not ended as planned (its "early"
  row, see flows.py);
- the fan-in (``match``) ran at most once per attempt counted (a run given
  back uncounted at a graceful stop aside), and never did its work twice
  outside the duplicate window;
- a failed workflow's reason names its broken crawl, and so does the error
  of each job that ended because of it (``blocked_by`` and its traceback).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .records import JobRecord

if TYPE_CHECKING:
    from .analysis import Findings
    from .evidence import Evidence
    from .window import Duplicate

FLOWS = """
    SELECT id, name, state, reason FROM django_jobs_workflow ORDER BY id
"""
STEPS = """
    SELECT id, task_path, state, workflow_id, attempts,
           extract(epoch FROM started_at)::float8,
           extract(epoch FROM finished_at)::float8,
           blocked_by_id, runs_anyway, return_value
    FROM django_jobs_job WHERE workflow_id IS NOT NULL ORDER BY id
"""
#: The same on MariaDB (Django's DATETIME columns hold UTC; the session is UTC).
STEPS_MYSQL = STEPS
for _column in ("started_at", "finished_at"):
    STEPS_MYSQL = STEPS_MYSQL.replace(
        f"extract(epoch FROM {_column})::float8", f"UNIX_TIMESTAMP({_column}) + 0E0"
    )
EDGES = "SELECT upstream_id, downstream_id FROM django_jobs_dependency ORDER BY id"
ENDED = ("done", "buried")
#: What a worker logs when its rescuer recounted waiting jobs (the net).
RECOUNTED = re.compile(r"(\d+) waiting job\(s\) counted their upstream again")
MODULE = "tests.soak.flows."
Row = tuple[str, object, str]


@dataclass
class Flow:
    id: int
    name: str
    state: str
    reason: str
    steps: list[Step] = field(default_factory=list)


@dataclass
class Step:
    id: int
    task: str
    state: str
    workflow: int
    attempts: int
    started: float | None
    finished: float | None
    blocked_by: int | None
    anyway: bool
    returned: object
    upstream: list[int] = field(default_factory=list)
    downstream: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.task.removeprefix(MODULE)


class Graphs:
    """The workflows of a soak, their jobs and edges, and the figures."""

    def __init__(
        self,
        flows: list[tuple],
        steps: list[tuple],
        edges: list[tuple],
        early: set[int],
        jobs: dict[int, JobRecord],
    ) -> None:
        self.flows = {row[0]: Flow(*row) for row in flows}
        self.steps = {row[0]: Step(*row) for row in steps}
        for upstream, downstream in edges:
            if upstream in self.steps and downstream in self.steps:
                self.steps[downstream].upstream.append(upstream)
                self.steps[upstream].downstream.append(downstream)
        for step in self.steps.values():
            if step.workflow in self.flows:
                self.flows[step.workflow].steps.append(step)
        self.early = early
        self.jobs = jobs
        self.planned = self.planned_ends()

    # The plan

    def planned_ends(self) -> dict[int, str]:
        """The end each job must reach: buried for a broken crawl and what
        waits for it (not running anyway, and not through one that does)."""
        doomed = {s.id for s in self.steps.values() if s.name == "broken"}
        frontier = set(doomed)
        while frontier:
            frontier = {
                d
                for u in frontier
                for d in self.steps[u].downstream
                if not self.steps[d].anyway and d not in doomed
            }
            doomed |= frontier
        return {i: "buried" if i in doomed else "done" for i in self.steps}

    def broken(self, flow: Flow) -> list[Step]:
        return [step for step in flow.steps if step.name == "broken"]

    def planned_state(self, flow: Flow) -> str:
        return "failed" if self.broken(flow) else "succeeded"

    # The figures

    def not_ended(self) -> list[Flow]:
        """Still running, or failed (or cancelled) without a reason."""
        return [
            flow
            for flow in self.flows.values()
            if flow.state == "running"
            or (flow.state != "succeeded" and not flow.reason)
        ]

    def wrong_outcome(self) -> list[Flow]:
        return [
            flow
            for flow in self.flows.values()
            if flow.state != "running" and flow.state != self.planned_state(flow)
        ]

    def left_waiting(self) -> list[Step]:
        """Waiting, though every job it waits for has ended."""
        return [
            step
            for step in self.steps.values()
            if step.state == "waiting"
            and all(self.steps[u].state in ENDED for u in step.upstream)
        ]

    def first_start(self, step: Step) -> float | None:
        """When ``step`` first ran: its first run's "start" row (written by
        the child, once the claim committed), or its first claim if no run
        left a row (killed before it wrote one)."""
        job = self.jobs.get(step.id)
        starts = [run.start for run in job.runs] if job else []
        return min(starts) if starts else step.started

    def started_early(self) -> list[tuple[Step, Step]]:
        """(dependent, upstream): the dependent ran before the upstream job
        ended, or the upstream job never ended."""
        found = []
        for step in self.steps.values():
            if (start := self.first_start(step)) is None:
                continue
            for upstream in map(self.steps.get, step.upstream):
                if (
                    upstream.state not in ENDED
                    or upstream.finished is None
                    or start < upstream.finished
                ):
                    found.append((step, upstream))
        return found

    def stamped_early(self) -> list[float]:
        """How long before an upstream job's end a dependent's first claim
        was stamped (``started_at`` below its ``finished_at``), in seconds.
        Not a fault: a claimer reads its clock, then sends the claim, which
        sees the job released if the release commits in between."""
        return [
            upstream.finished - step.started
            for step in self.steps.values()
            if step.started is not None
            for upstream in map(self.steps.get, step.upstream)
            if upstream.finished is not None and step.started < upstream.finished
        ]

    def read_early(self) -> list[Step]:
        """Steps that read an upstream job not ended as planned."""
        return [self.steps[i] for i in sorted(self.early) if i in self.steps]

    def fan_ins(self) -> list[JobRecord]:
        return [
            self.jobs[s.id]
            for s in self.steps.values()
            if s.name == "match" and s.id in self.jobs
        ]

    def fan_in_reruns(self, findings: Findings) -> list[JobRecord]:
        """Fan-in steps run more often than their attempts counted: a run of
        an attempt past the count, or two runs of one attempt but at a
        graceful stop (see Findings.uncounted_runs)."""
        uncounted = {job.id for job, _, _ in findings.uncounted_runs()}
        return [
            job
            for job in self.fan_ins()
            if job.id in uncounted or any(r.attempt > job.attempts for r in job.runs)
        ]

    def fan_in_twice(self, findings: Findings) -> tuple[int, list[Duplicate]]:
        """Fan-in steps whose work was done twice; the duplicates of those
        that the duplicate window does not explain."""
        ids = {job.id for job in self.fan_ins()}
        twice = sum(1 for job in self.fan_ins() if len(job.completions) > 1)
        return twice, [d for d in findings.unexplained() if d.job.id in ids]

    def unnamed_failures(self) -> list[tuple[Flow, str]]:
        """Failed workflows whose reason does not name the broken crawl, or
        with a job ended because of it whose error does not name it."""
        found = []
        for flow in self.flows.values():
            if flow.state != "failed" or not (broken := self.broken(flow)):
                continue
            roots = {step.id for step in broken}
            if not any(f"(job {i})" in flow.reason for i in roots):
                why = f"its reason names no broken crawl {sorted(roots)}"
                found.append((flow, why))
            for step in flow.steps:
                if (
                    step.state == "buried"
                    and step.id not in roots
                    and (why := self.unnamed(step, roots))
                ):
                    found.append((flow, f"job {step.id} ({step.name}) {why}"))
        return found

    def unnamed(self, step: Step, roots: set[int]) -> str:
        if step.blocked_by not in roots:
            return f"is blocked by {step.blocked_by}, not a broken crawl"
        job = self.jobs.get(step.id)
        text = str(job.errors[-1].get("traceback", "")) if job and job.errors else ""
        if f"job {step.blocked_by} ({MODULE}broken)" not in text:
            return f"has an error that does not name job {step.blocked_by}"
        return ""

    def recounted(self, findings: Findings) -> int:
        """Waiting jobs the rescuer counted again, from the workers' logs:
        the net's work, not a fault (see queue.workflows.repair)."""
        total = 0
        for each in findings.incarnations:
            try:
                text = Path(each.log).read_text(errors="replace")
            except OSError:
                continue
            total += sum(int(n) for n in RECOUNTED.findall(text))
        return total

    # The report's rows, gate and evidence

    def gate(self, findings: Findings) -> dict[str, int]:
        return {
            "workflows not ended, or failed with no reason": len(self.not_ended()),
            "workflows that did not end as planned": len(self.wrong_outcome()),
            "jobs left waiting, their upstream all ended": len(self.left_waiting()),
            "jobs started before their upstream ended": len(self.started_early()),
            "steps that read an upstream not ended": len(self.read_early()),
            "fan-in runs beyond their attempts": len(self.fan_in_reruns(findings)),
            "fan-in work done twice, unexplained": len(self.fan_in_twice(findings)[1]),
            "failures that do not name the failed step": len(self.unnamed_failures()),
        }

    def rows(self, findings: Findings) -> list[Row]:
        states = Counter(flow.state for flow in self.flows.values())
        planned = Counter(self.planned_state(flow) for flow in self.flows.values())
        pages = sum(1 for step in self.steps.values() if step.name == "page")
        edges = sum(len(step.upstream) for step in self.steps.values())
        missed = sum(
            1 for flow in self.flows.values() if "missed its deadline" in flow.reason
        )
        twice, unexplained = self.fan_in_twice(findings)
        stamped = self.stamped_early()
        fan_ins = self.fan_ins()
        gate = self.gate(findings)
        return [
            ("workflows / jobs in them / edges",
             f"{len(self.flows)} / {len(self.steps)} / {edges}", ""),
            ("  succeeded / failed (planned)",
             f"{states['succeeded']} / {states['failed']} "
             f"({planned['succeeded']} / {planned['failed']})", ""),
            ("  page jobs added by running crawls (fan-out)", pages, ""),
            ("  fan-in steps / their runs", f"{len(fan_ins)} / "
             f"{sum(len(job.runs) for job in fan_ins)}", ""),
            ("  waiting jobs the rescuer counted again", self.recounted(findings), ""),
            ("  missed their deadline", missed, ""),
            ("  not ended, or failed with no reason",
             gate["workflows not ended, or failed with no reason"], "yes"),
            ("  ended otherwise than planned",
             gate["workflows that did not end as planned"], "yes"),
            ("  jobs left waiting, their upstream all ended",
             gate["jobs left waiting, their upstream all ended"], "yes"),
            ("  jobs run before an upstream job ended",
             gate["jobs started before their upstream ended"], "yes"),
            ("  first claims stamped before an upstream's end (by at most)",
             f"{len(stamped)} ({max(stamped, default=0) * 1000:.0f} ms)", ""),
            ("  steps that read an upstream not ended as planned",
             gate["steps that read an upstream not ended"], "yes"),
            ("  fan-in runs beyond the attempts counted",
             gate["fan-in runs beyond their attempts"], "yes"),
            ("  fan-in steps whose work was done twice", twice, ""),
            ("    outside the duplicate window", len(unexplained), "yes"),
            ("  failed steps not named by the workflow or its ended jobs",
             gate["failures that do not name the failed step"], "yes"),
        ]  # fmt: skip

    def failures(self, findings: Findings, evidence: Evidence) -> list[str]:
        sections = []
        if flows := self.not_ended():
            sections.append(self.show("WORKFLOWS NOT ENDED", flows, evidence))
        if flows := self.wrong_outcome():
            sections.append(self.show("WORKFLOWS NOT AS PLANNED", flows, evidence))
        if steps := self.left_waiting():
            sections.append(self.show_steps("LEFT WAITING", steps, evidence))
        if pairs := self.started_early():
            notes = {
                d.id: f"first ran {evidence.t(self.first_start(d))} (claimed "
                f"{evidence.t(d.started)}); upstream job {u.id} ({u.name}) "
                f"{u.state}, ended {evidence.t(u.finished)}"
                for d, u in pairs
            }
            steps = [d for d, _ in pairs]
            sections.append(self.show_steps("STARTED EARLY", steps, evidence, notes))
        if steps := self.read_early():
            notes = {s.id: f"it read: {s.returned}" for s in steps}
            sections.append(self.show_steps("READ EARLY", steps, evidence, notes))
        if jobs := self.fan_in_reruns(findings):
            sections.append(evidence.jobs("FAN-IN RUNS BEYOND ATTEMPTS", jobs))
        if dups := self.fan_in_twice(findings)[1]:
            title = "FAN-IN WORK TWICE, UNEXPLAINED"
            sections.append(evidence.jobs(title, [d.job for d in dups]))
        if unnamed := self.unnamed_failures():
            lines = [f"FAILURES NOT NAMED: {len(unnamed)}"]
            lines += [f"- workflow {f.id} {f.reason!r}: {why}" for f, why in unnamed]
            sections.append("\n".join(lines[:41]))
        return sections

    def show(self, title: str, flows: list[Flow], evidence: Evidence) -> str:
        lines = [f"{title}: {len(flows)} workflow(s): {[f.id for f in flows][:40]}"]
        for flow in flows[:8]:
            lines.append(
                f"- workflow {flow.id} {flow.name!r}: {flow.state} (planned "
                f"{self.planned_state(flow)}), reason {flow.reason!r}"
            )
            lines += [self.step_line(step, evidence) for step in flow.steps]
        return "\n".join(lines)

    def show_steps(self, title, steps, evidence, notes=None) -> str:
        jobs = [self.jobs[s.id] for s in steps if s.id in self.jobs]
        text = evidence.jobs(title, jobs, notes)
        by_flow = defaultdict(list)
        for step in steps:
            by_flow[step.workflow].append(step)
        flows = [self.flows[i] for i in by_flow if i in self.flows]
        return text + "\n" + self.show("  their workflows", flows, evidence)

    def step_line(self, step: Step, evidence: Evidence) -> str:
        return (
            f"    job {step.id} {step.name}: {step.state} (planned "
            f"{self.planned.get(step.id)}), attempts {step.attempts}, first claimed "
            f"{evidence.t(step.started)}, ended {evidence.t(step.finished)}, "
            f"blocked by {step.blocked_by}, waits for {step.upstream}"
            f"{' (anyway)' if step.anyway else ''}"
        )
