"""What a failover run shows: the jobs' ends, their runs, the workers' logs.

``analyse`` turns the evidence the driver collected (rows read from the
promoted server, marker files, worker logs, the switch's times) into figures
and lists of job ids; the test asserts on them and ``python -m
tests.failover`` prints them.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from pathlib import Path

from .kinds import ATTEMPTS, ENDS

#: A worker's log record begins with its asctime.
RECORD = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\w+) (\S+) (.*)$")
UNAVAILABLE = re.compile(r"database '[^']+' (still )?unavailable")
BACK = re.compile(r"database '[^']+' back after ([\d.]+) s")


#: The lists of job keys in the figures, in the order they are reported.
LISTS = (
    "lost",
    "lost_before_hold",
    "wrong_end",
    "never_ran",
    "completed_twice",
    "ran_more_than_planned",
    "extra_attempts",
)


def kind_of(task_path: str) -> str:
    return task_path.rpartition(".")[2]


def read_log(path: str) -> dict:
    """A worker's lines about its database, its tracebacks, its warnings, and
    the errors it logged about jobs (a claim it found lost, for one)."""
    text = Path(path).read_text(errors="replace")
    unavailable, back, worker_warnings, job_errors = [], [], [], []
    back_at: list[float] = []
    for line in text.splitlines():
        record = RECORD.match(line)
        if record is None:
            continue
        stamp, level, logger, message = record.groups()
        if UNAVAILABLE.search(message):
            unavailable.append(message)
        elif BACK.search(message):
            back.append(message)
            at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
            back_at.append(at)
        if logger == "django_jobs.worker" and level in ("WARNING", "ERROR"):
            worker_warnings.append(message)
        elif logger == "django_jobs.job" and level == "ERROR":
            job_errors.append(message)
    return {
        "log": path,
        "tracebacks": text.count("Traceback (most recent call last)"),
        "unavailable": unavailable,
        "back": back,
        "back_at": back_at,
        "worker_warnings": worker_warnings,
        "job_errors": job_errors,
    }


def runs_by_key(marks: list[str]) -> dict[int, Counter]:
    """Per job (by key): how many runs started ("ran"), finished ("done"),
    raised ("failed")."""
    runs: dict[int, Counter] = {}
    for name in marks:
        key, _job_id, _attempt, event, _pid = name.split(".")
        runs.setdefault(int(key), Counter())[event] += 1
    return runs


def rows_by_key(rows: list[list]) -> dict[int, dict]:
    """The promoted server's rows (id, task path, state, attempts, args,
    finish time), by the key each job was given."""
    return {
        row[4][0]: {
            "id": row[0],
            "kind": kind_of(row[1]),
            "state": row[2],
            "attempts": row[3],
            "finished": row[5],
        }
        for row in rows
    }


def rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def analyse(evidence: dict) -> dict:
    """The figures of one run, and the keys of the jobs that went wrong.

    "Acked" jobs are those whose enqueue returned; those acked before the
    replication link was held were on both servers before anything failed.
    """
    acked = {int(key): value for key, value in evidence["acked"].items()}
    rows = rows_by_key(evidence["rows"])
    runs = runs_by_key(evidence["marks"])
    held_at, promoted_at = evidence["held_at"], evidence["promoted_at"]
    before_hold = {key for key, value in acked.items() if value["at"] < held_at}
    settled_at = evidence["settled_at"]
    after = [r["finished"] for r in rows.values() if (r["finished"] or 0) > promoted_at]
    return {
        "synchronous": evidence["config"]["synchronous"],
        "hold": evidence["config"]["hold"],
        "wal_bytes_behind": evidence["wal_bytes_behind"],
        "acked": len(acked),
        "acked_before_hold": len(before_hold),
        "enqueue_failures": len(evidence["enqueue_failures"]),
        "rows": len(rows),
        "in_doubt_rows": sorted(set(rows) - set(acked)),
        "states": dict(Counter(row["state"] for row in rows.values())),
        "doomed_rows": sum(1 for row in rows.values() if row["kind"] == "doomed"),
        "lost": sorted(set(acked) - set(rows)),
        "lost_before_hold": sorted(before_hold - set(rows)),
        "wrong_end": sorted(
            key for key, row in rows.items() if row["state"] != ENDS[row["kind"]]
        ),
        "never_ran": sorted(key for key in rows if not runs.get(key)),
        "completed_twice": sorted(key for key, run in runs.items() if run["done"] > 1),
        "ran_more_than_planned": sorted(
            key
            for key, row in rows.items()
            if runs.get(key, Counter())["ran"] > ATTEMPTS[row["kind"]]
        ),
        "extra_attempts": sorted(
            key for key, row in rows.items() if row["attempts"] > ATTEMPTS[row["kind"]]
        ),
        "switch_seconds": round(promoted_at - evidence["stopped_at"], 2),
        "first_finish_after_promotion": rounded(min(after) - promoted_at)
        if after
        else None,
        "settled": settled_at is not None,
        "settled_after_promotion": rounded(settled_at and settled_at - promoted_at, 1),
        "listening_again": evidence["listening_again"],
        "running_at_end": evidence["running_at_end"],
        "worker_codes": evidence["worker_codes"],
        "workers": [
            {
                **log,
                "resumed_after_promotion": [
                    round(at - promoted_at, 2) for at in log["back_at"]
                ],
            }
            for log in map(read_log, evidence["worker_logs"])
        ],
    }


def report(figures: dict) -> str:
    """The figures as text, one fact a line."""
    lines = [
        f"replication: {'synchronous' if figures['synchronous'] else 'asynchronous'}",
        f"replication link held {figures['hold']} s: the standby lacked "
        f"{figures['wal_bytes_behind']} bytes of WAL when promoted",
        f"jobs acked: {figures['acked']} ({figures['acked_before_hold']} before "
        f"the hold); enqueues that failed: {figures['enqueue_failures']}; rows "
        f"on the promoted server: {figures['rows']} "
        f"(in doubt, not acked: {len(figures['in_doubt_rows'])})",
        f"states: {figures['states']}",
        f"switch (stop to promoted): {figures['switch_seconds']} s; first job "
        f"finished {figures['first_finish_after_promotion']} s after promotion; "
        f"all ended {figures['settled_after_promotion']} s after",
    ]
    for name in LISTS:
        ids = figures[name]
        lines.append(f"{name}: {len(ids)} {ids[:20]}")
    lines.append(
        f"workers listening again: {figures['listening_again']}; running at the "
        f"end: {figures['running_at_end']}; exit codes: {figures['worker_codes']}"
    )
    for number, worker in enumerate(figures["workers"]):
        lines.append(
            f"worker {number}: {len(worker['unavailable'])} unavailable, "
            f"{len(worker['back'])} back {worker['resumed_after_promotion']} s "
            f"after promotion, {worker['tracebacks']} traceback(s), "
            f"{len(worker['worker_warnings'])} warning(s), "
            f"{len(worker['job_errors'])} job error(s): {worker['log']}"
        )
        messages = worker["worker_warnings"] + worker["job_errors"]
        lines += [f"    {message}" for message in messages[:12]]
    return "\n".join(lines)
