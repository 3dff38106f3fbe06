"""Rates per key: how many starts a key may have per window.

Written ``"1000/hour"`` (or ``"5/second"``, ``"100/minute"``, ``"2/day"``;
``s``, ``sec``, ``m``, ``min``, ``h``, ``d`` also do), ``(1000, "hour")``, or
a whole number meaning per second. Windows are fixed and aligned to the clock
(UTC): a minute's window starts at :00 seconds, an hour's at :00 minutes, a
day's at midnight UTC.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

#: The windows a rate may use, in seconds, by name.
PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_ALIASES = {
    "s": "second", "sec": "second", "seconds": "second",
    "m": "minute", "min": "minute", "minutes": "minute",
    "h": "hour", "hours": "hour", "d": "day", "days": "day",
}  # fmt: skip
#: The largest count a rate may have: the column's range.
MAX_COUNT = 2**31 - 1
_EPOCH = datetime(1970, 1, 1)


class BadRate(ValueError):
    """A rate that cannot be read; its message says what is expected."""


def parse_rate(value: Any) -> tuple[int, int]:
    """``(count, period in seconds)`` of a rate as settings may write it."""
    if isinstance(value, str):
        count, _, unit = value.replace(" ", "").partition("/")
        if not count.isdigit() or not unit:
            raise _bad(value)
        return _checked(int(count), unit, value)
    if isinstance(value, tuple | list) and len(value) == 2:
        count, unit = value
        if isinstance(count, bool) or not isinstance(count, int):
            raise _bad(value)
        return _checked(count, unit, value)
    if isinstance(value, int) and not isinstance(value, bool):
        return _checked(value, "second", value)
    raise _bad(value)


def _checked(count: int, unit: Any, value: Any) -> tuple[int, int]:
    name = _ALIASES.get(unit, unit) if isinstance(unit, str) else None
    if name not in PERIODS:
        raise BadRate(
            f"{value!r} has an unknown window {unit!r}: use one of "
            f"{', '.join(PERIODS)}."
        )
    if not 1 <= count <= MAX_COUNT:
        raise BadRate(
            f"{value!r} must allow at least one start per window (and at most "
            f"{MAX_COUNT})."
        )
    return count, PERIODS[name]


def _bad(value: Any) -> BadRate:
    return BadRate(
        f"{value!r} is not a rate: write it as 'COUNT/WINDOW' (such as "
        "'1000/hour'), (COUNT, 'hour'), or a whole number of starts per second."
    )


def describe_rate(count: int | None, period: int | None) -> str:
    """A rate as people write it (``"1000/hour"``); "" for none."""
    if count is None:
        return ""
    names = {seconds: name for name, seconds in PERIODS.items()}
    return f"{count}/{names.get(period or 1, f'{period}s')}"


def window_start(now: datetime, period: int) -> datetime:
    """The start of the fixed window of ``period`` seconds that holds ``now``."""
    naive = now.replace(tzinfo=None)
    offset = (naive - _EPOCH) // timedelta(seconds=period) * timedelta(seconds=period)
    return (_EPOCH + offset).replace(tzinfo=now.tzinfo)
