"""Jobs whose outcome a duty decided, not a report from their attempt.

The rescuer takes back the jobs of dead workers and expired reservations,
and ends the jobs past their own or their workflow's deadline: no child
reports those, so the worker's on_outcome hooks hear of them from what the
write returned (``RETURNING``), never from a copy read beforehand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..models import Job

#: What such a job's outcome tells of it (``hooks.Outcome``).
OUTCOME_FIELDS = (
    "id",
    "task_path",
    "queue",
    "backend",
    "attempts",
    "max_attempts",
    "trace_context",
)

_ATTNAMES = {name: Job._meta.get_field(name).attname for name in OUTCOME_FIELDS}


@dataclass(frozen=True, slots=True)
class Decided:
    """What one duty's writes decided: each job as written (``OUTCOME_FIELDS``)
    with ``then`` ("retried", "buried", "deleted", "expired") and the
    ``error`` entry it was given."""

    jobs: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.jobs)

    def counts(self) -> dict[str, int]:
        """How many jobs of each ``then`` (retried, buried, deleted at least)."""
        counts = dict.fromkeys(("retried", "buried", "deleted"), 0)
        for job in self.jobs:
            counts[job["then"]] = counts.get(job["then"], 0) + 1
        return counts


def decided(row: dict[str, Any], then: str, error: dict[str, Any] | None) -> dict:
    """One job of ``Decided``: a row of RETURNING (keyed by attname) or of
    ``values()`` (keyed by name), with what followed."""
    named = {name: row.get(name, row.get(_ATTNAMES[name])) for name in OUTCOME_FIELDS}
    return {**named, "then": then, "error": error}
