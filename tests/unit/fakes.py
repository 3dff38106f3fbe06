"""Stand-ins for the worker's objects in unit tests of the ones that use them.

A ``Fake`` takes any method call, writes it down, and returns what the test
told it to: ``Fake(renew="lost")`` answers ``renew(...)`` with ``"lost"``,
and every other method with ``None``. Attributes the code under test reads
(``children.busy``, ``leases.kept``) are set on it by the test.
"""

from __future__ import annotations

from typing import Any


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
