"""Hot statements written with named placeholders, sent with positional ones.

A statement of ``queue.sql`` names each of its placeholders where it uses
it: ``%(worker_id)s``, or ``%(queues.0)s`` for the first of a list. Once per
shape it becomes the text the database gets, with plain ``%s`` (the text a
prepared statement is cached by, the same as if it had been written so),
and the list of names in placeholder order; each call then gives its values
by name, so that no caller counts positions. The rows of a VALUES list,
whose number varies, are added to the text without parsing it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import chain
from typing import Any

_PLACEHOLDER = re.compile(r"%%|%\((\w+)(?:\.(\d+))?\)s|%s")
#: The index of a slot that stands for a list of rows (see ``Statement.rows``).
ROWS = -1


@dataclass(frozen=True, slots=True)
class Statement:
    """A statement's text, as sent, and what each of its placeholders stands
    for, in order: a value's name, and its index when the value is a list
    (``ROWS``: every value of a list of rows, for as many placeholders)."""

    sql: str
    slots: tuple[tuple[str, int | None], ...]

    @classmethod
    def named(cls, text: str) -> Statement:
        """The statement written as ``text``, whose placeholders are all named
        (``%%`` stays a literal percent sign)."""
        slots: list[tuple[str, int | None]] = []

        def positional(match: re.Match) -> str:
            if match[0] == "%%":
                return "%%"
            if match[1] is None:
                raise ValueError(f"An unnamed placeholder in {text!r}")
            slots.append((match[1], None if match[2] is None else int(match[2])))
            return "%s"

        return cls(_PLACEHOLDER.sub(positional, text), tuple(slots))

    @classmethod
    def rows(cls, name: str, width: int, count: int) -> Statement:
        """``count`` rows of a VALUES list, ``(%s, %s, ...)`` with ``width``
        placeholders each, for the value ``name``: a list of ``count`` rows
        of ``width`` values. Built without parsing, as the count varies."""
        row = f"({', '.join(['%s'] * width)})"
        return cls(", ".join([row] * count), ((name, ROWS),))

    def __add__(self, other: Statement) -> Statement:
        return Statement(self.sql + other.sql, self.slots + other.slots)

    def bind(self, **values: Any) -> tuple[str, list[Any]]:
        """The text and its parameters, one per placeholder, by name."""
        params: list[Any] = []
        for name, index in self.slots:
            if index is None:
                params.append(values[name])
            elif index == ROWS:
                params.extend(chain.from_iterable(values[name]))
            else:
                params.append(values[name][index])
        return self.sql, params
