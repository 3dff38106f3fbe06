"""How the ``jobs`` command prints: tables, progress, JSON."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any

from ..models import Job


def table(header: list[str], rows: list[list]) -> list[str]:
    """Left-aligned columns under a header and a rule of dashes."""
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def describe_progress(progress: dict | None) -> str:
    """'3/4 (75%) almost there', from what the job reported."""
    if not progress:
        return ""
    done, total = progress.get("done"), progress.get("total")
    text = f"{done:g}" if total is None else f"{done:g}/{total:g}"
    if total:
        text += f" ({done / total:.0%})"
    if progress.get("message"):
        text += f" {progress['message']}"
    return text


def job_summary(job: Job) -> dict[str, Any]:
    """A job as ``jobs list --json`` prints it."""
    return {
        "id": job.pk,
        "task": job.task_path,
        "queue": job.queue,
        "state": job.display_state,
        "priority": job.priority,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "run_at": job.run_at.isoformat(),
        "enqueued_at": job.enqueued_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "progress": job.progress,
    }


def add_json(parser: Any) -> None:
    """The ``--json`` flag of a subcommand that prints a stable document."""
    parser.add_argument(
        "--json", action="store_true", dest="as_json", help="Machine-readable."
    )


def dump(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


@contextlib.contextmanager
def quiet_when_the_reader_leaves() -> Iterator[None]:
    """End quietly, as Unix tools do, when the reader of the output goes away
    (``jobs show 12 | head``): no traceback, and the status of a process that
    SIGPIPE stopped (141 in a shell).

    Python ignores SIGPIPE, so a write to a closed pipe raises BrokenPipeError
    instead. What is still buffered is flushed here, inside, so that Python's
    own flush at exit does not complain in its place; once the reader is
    gone, the rest goes to /dev/null.
    """
    try:
        yield
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):  # stdout, stderr: either may be the closed pipe
            os.dup2(devnull, fd)
        os.close(devnull)
        raise SystemExit(128 + signal.SIGPIPE) from None
