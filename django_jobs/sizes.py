"""Sizes of memory, as people write them and as the worker reports them.

One home for the rule, imported by the task options, ``OPTIONS`` and the
``runworker`` flags. A size is a whole number of bytes, or a number with a
unit: decimal ``kB``/``KB``, ``MB``, ``GB``, ``TB`` (powers of 1000),
binary ``KiB``, ``MiB``, ``GiB``, ``TiB`` (powers of 1024), and a bare
``K``, ``M``, ``G``, ``T`` that is binary too, as ``ulimit``, Docker
(``--memory 512m``) and the JVM (``-Xmx512m``) read it. Case does not
matter; a space before the unit is allowed.
"""

from __future__ import annotations

import math
import re
from typing import Any

_UNITS = {"": 1, "b": 1}
for _power, _letter in enumerate("kmgt", start=1):
    _UNITS[_letter + "b"] = 1000**_power
    _UNITS[_letter + "ib"] = 1024**_power
    _UNITS[_letter] = 1024**_power

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)\s*$", re.IGNORECASE)


def size_problem(value: Any) -> str | None:
    """Why ``value`` is no size, in words for an error message; None if it is."""
    try:
        parse_size(value)
    except ValueError as exc:
        return str(exc)
    return None


def parse_size(value: Any) -> int:
    """The bytes ``value`` stands for: a positive int, or a string such as
    "512MB", "1.5GiB" or "512M"; ValueError says why not."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ValueError(f"a size must be more than zero bytes, got {value!r}")
        return value
    found = _SIZE.match(value) if isinstance(value, str) else None
    unit = _UNITS.get(found[2].lower()) if found else None
    if unit is None:
        raise ValueError(
            'a size is a number of bytes or a string such as "512MB", "512MiB" '
            f'or "1.5G", got {value!r}'
        )
    number = float(found[1]) * unit
    if not math.isfinite(number) or number < 1:
        raise ValueError(f"a size must be more than zero bytes, got {value!r}")
    return int(number)


def size_or_none(value: Any, where: str, error: type[Exception]) -> int | None:
    """``parse_size(value)``, None kept; a bad size raises ``error`` (the
    caller's kind: a settings error, a command error) naming ``where``."""
    if value is None:
        return None
    try:
        return parse_size(value)
    except ValueError as exc:
        raise error(f"{where}: {exc}.") from None


def format_size(size: int | float | None) -> str:
    """``size`` bytes for people: "612 MB", "1.50 GB", "980 kB" (decimal
    units, three significant figures); "" for None."""
    if size is None:
        return ""
    for unit, factor in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= factor:
            return f"{_three_figures(size / factor)} {unit}"
    return f"{int(size)} B"


def _three_figures(number: float) -> str:
    if number >= 100:
        return f"{number:.0f}"
    return f"{number:.1f}" if number >= 10 else f"{number:.2f}"


def cpu_seconds_problem(value: Any) -> str | None:
    """Why ``value`` is no CPU-time limit (a positive, finite number of
    seconds); None if it is."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        return f"a CPU time is a number of seconds above zero, got {value!r}"
    return None


def usage_rows(usage: Any) -> list[tuple[str, str, str, str]]:
    """Each attempt's usage (``Job.usage``) for people, newest first:
    (attempt, peak memory, CPU, wall time); "-" where it is not known. A
    column written by hand that is no list of entries gives no rows."""
    if not isinstance(usage, list):
        return []
    rows = []
    for used in reversed(usage):
        if not isinstance(used, dict):
            continue
        rows.append(
            (
                str(used.get("attempt", "?")),
                format_size(used.get("max_rss")) or "-",
                _seconds(used.get("cpu")),
                _seconds(used.get("wall")),
            )
        )
    return rows


def limits_text(max_memory: int | None, max_cpu_seconds: float | None) -> str:
    """A job's own limits for people; "" if its task set none."""
    parts = []
    if max_memory is not None:
        parts.append(f"memory {format_size(max_memory)}")
    if max_cpu_seconds is not None:
        parts.append(f"CPU {max_cpu_seconds:g} s")
    return ", ".join(parts)


def _seconds(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
