"""The evidence behind a failing figure: what a person needs to find the bug.

For a job: its row (state, attempts, every error with its attempt and
worker), each run with its process chain (child <- fork server <-
supervisor, as pid@start) and its times, the chaos actions around it, and
the worker log lines that name it. For a worker: how it ended, and the end
of its log. Times are seconds since the chaos began ("t+12.34s").
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from .analysis import Findings
from .records import JobRecord
from .workers import Incarnation

EXAMPLES = 8  # jobs (or workers) shown in full per failing figure
LOG_LINES = 14  # log lines shown per job
WIDTH = 220  # characters of a log line shown


class Evidence:
    def __init__(self, findings: Findings) -> None:
        self.f = findings
        self.logs = LogIndex(findings.incarnations)
        self.slots = {i.identity: i.slot for i in findings.incarnations}

    def t(self, when: float | None) -> str:
        return "-" if when is None else f"t+{when - self.f.t0:.2f}s"

    def jobs(
        self, title: str, jobs: list[JobRecord], notes: dict[int, str] | None = None
    ) -> str:
        unique = list({job.id: job for job in jobs}.values())
        ids = [job.id for job in unique[:40]]
        lines = [f"{title}: {len(unique)} job(s): {ids}"]
        for job in unique[:EXAMPLES]:
            lines += self.job(job, (notes or {}).get(job.id))
        return "\n".join(lines)

    def job(self, job: JobRecord, note: str | None = None) -> list[str]:
        kind = job.kind.name if job.kind else job.task_path
        lines = [f"- job {job.id} ({kind}): {job.state}, attempts "]
        lines[0] += f"{job.attempts}/{job.max_attempts}"
        if note:
            lines.append(f"    {note}")
        lines += [self.run(run) for run in job.runs]
        lines += [self.error(error) for error in job.errors]
        lines += self.chaos_around(job)
        lines += [f"    log {line[:WIDTH]}" for line in self.logs.about(job.id)]
        return lines

    def run(self, run) -> str:
        slot = self.slots.get(run.supervisor, "?")
        return (
            f"    run {run.run[:8]} attempt {run.attempt}: child {run.child} <- "
            f"fork server {run.fork_server} <- supervisor {run.supervisor} "
            f"(slot {slot}); start {self.t(run.start)} done {self.t(run.done)} "
            f"last {self.t(run.last_seen)}"
        )

    def error(self, error: dict) -> str:
        last = (error.get("traceback") or "").strip().splitlines()[-1:] or [""]
        at = error.get("at")
        when = self.t(datetime.fromisoformat(at).timestamp()) if at else "-"
        return (
            f"    error attempt {error.get('attempt')} at {when} by "
            f"{error.get('worker_id')}: {last[0][:160]!r}"
        )

    def chaos_around(self, job: JobRecord, margin: float = 2.0) -> list[str]:
        """The chaos actions during any of the job's runs, or just around one."""
        near = [
            e
            for e in self.f.events
            if any(
                e.at <= run.last_seen + margin and e.until >= run.start - margin
                for run in job.runs
            )
        ]
        return [
            f"    chaos {self.t(e.at)}..{self.t(e.until)}: {e.action} slot {e.slot} "
            f"worker {e.worker} hits {e.hits} {e.detail}"
            for e in near
        ]

    def workers(self, title: str, gone: list[Incarnation]) -> str:
        lines = [f"{title}: {len(gone)}"]
        for each in gone[:EXAMPLES]:
            lines.append(
                f"- slot {each.slot} supervisor {each.identity}: started "
                f"{self.t(each.started)}, ended {self.t(each.ended)} with code "
                f"{each.code} (expected: {each.expected}); log {each.log}"
            )
            try:
                tail = Path(each.log).read_text(errors="replace").splitlines()[-12:]
            except OSError:
                tail = []
            lines += [f"    {line[:WIDTH]}" for line in tail]
        return "\n".join(lines)


class LogIndex:
    """The worker log lines that name each job ("job 123 ..."), read once."""

    PATTERN = re.compile(r"\bjob (\d+)\b")

    def __init__(self, incarnations: list[Incarnation]) -> None:
        self.incarnations = incarnations
        self.index: dict[int, list[tuple[str, str]]] | None = None

    def about(self, job_id: int) -> list[str]:
        if self.index is None:
            self.index = self.build()
        lines = sorted(self.index.get(job_id, []))  # by their timestamp
        return [line for _, line in lines[:LOG_LINES]]

    def build(self) -> dict[int, list[tuple[str, str]]]:
        index: dict[int, list[tuple[str, str]]] = defaultdict(list)
        for each in self.incarnations:
            try:
                text = Path(each.log).read_text(errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                for match in set(self.PATTERN.findall(line)):
                    index[int(match)].append((line[:23], f"[slot {each.slot}] {line}"))
        return index
