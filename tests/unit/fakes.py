"""Stand-ins for the worker's objects in unit tests of the ones that use them.

A ``Fake`` takes any method call, writes it down, and returns what the test
told it to: ``Fake(renew="lost")`` answers ``renew(...)`` with ``"lost"``,
and every other method with ``None``. Attributes the code under test reads
(``children.busy``, ``leases.kept``) are set on it by the test. ``job``
is a claimed job's row, unsaved.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from django_jobs.models import Job


class Fake:
    def __init__(self, **returns: Any) -> None:
        self.returns = returns
        self.calls: list[tuple[str, tuple, dict]] = []

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)

        def method(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            answer = self.returns.get(name)
            return answer(*args, **kwargs) if callable(answer) else answer

        return method

    def args(self, name: str) -> list[tuple]:
        """The arguments of each call of ``name``, in order."""
        return [args for called, args, _ in self.calls if called == name]

    def kwargs(self, name: str) -> list[dict]:
        return [kwargs for called, _, kwargs in self.calls if called == name]

    def names(self) -> list[str]:
        """The methods called, in order."""
        return [called for called, _, _ in self.calls]


def job(pk: int, ttr: int = 60) -> Job:
    """A job as a worker holds it: claimed once, reserved for ``ttr``."""
    return Job(
        pk=pk,
        task_path="tests.tasks.noop",
        queue="default",
        ttr=ttr,
        attempts=1,
        max_attempts=3,
        claim_token="t",
        reserved_until=timezone.now() + timedelta(seconds=ttr),
        enqueued_at=timezone.now(),
        args=[],
        kwargs={},
        worker_ids=["w"],
    )
