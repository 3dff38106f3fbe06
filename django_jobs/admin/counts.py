"""The dashboard's numbers, with the estimates marked as such.

Past ``counting.CAP`` jobs in a state, its counts per queue are estimates
(``live_counts``). The dashboard shows them as "≈ 1,200,000", with a title
that says why, so that nobody takes them for a count; exact counts are shown
as they are.
"""

from __future__ import annotations

from typing import Any

from django.utils.formats import number_format
from django.utils.html import format_html
from django.utils.translation import gettext as _

from ..stats import COUNTS


def estimate(text: str) -> str:
    """``text`` marked as an estimate."""
    return format_html(
        '<span class="jobs-estimated" title="{}">≈&nbsp;{}</span>',
        _("estimated: too many jobs to count at every refresh"),
        text,
    )


def count_cells(counts: dict[str, Any], estimated: frozenset[str]) -> dict[str, Any]:
    """The cells of ``counts`` (a row's or the totals), by name: estimates
    marked, and the lag of the oldest ready job when it is a row's."""
    cells: dict[str, Any] = {}
    for name in COUNTS:
        value = counts.get(name, 0)
        if name in estimated:
            value = estimate(number_format(value, force_grouping=True))
        cells[name] = value
    lag = counts.get("lag")
    if lag and "oldest_ready" in estimated:
        lag = estimate(lag)
    cells["lag"] = lag
    return cells
