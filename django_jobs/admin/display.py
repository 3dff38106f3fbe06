"""How jobs look in the console: state badges, times, progress and JSON.

Plain functions of a value, so that the job list, the job page and the
dashboard show the same thing the same way.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _

from ..durations import clock, duration, relative
from ..states import MEANINGS
from ..stats import DISPLAY_STATES


def console_context(page: str, now: datetime) -> dict[str, Any]:
    """What the refresh switch and the legend need (refresh.html, legend.html)."""
    return {
        "page": page,
        "now": now,
        "legend": [(state, MEANINGS[state]) for state in DISPLAY_STATES],
        "refresh_text": {
            "next": _("next in %s s"),
            "paused": _("paused while %s"),
            "refreshing": _("refreshing..."),
            "selected": _("jobs are selected"),
            "typing": _("you type"),
            "changed": _("a form is changed"),
        },
    }


def state_badge(state: str) -> str:
    """A coloured label for a display state (the colours are in styles.html),
    saying what the state means on hover."""
    return format_html(
        '<span class="jobs-state jobs-state-{0}" title="{1}">{0}</span>',
        state,
        MEANINGS.get(state, ""),
    )


def short_time(moment: datetime | None, now: datetime | None = None) -> str:
    """A clock time to the second, with the date unless it is today; the
    full date, time and zone on hover.

    Plain ``strftime``: the job list shows a hundred of these, and Django's
    localised formatting costs as much as the rest of the row.
    """
    if moment is None:
        return "-"
    local = timezone.localtime(moment)
    today = timezone.localtime(now or timezone.now()).date()
    short = local.strftime("%H:%M:%S" if local.date() == today else "%b %d %H:%M:%S")
    return format_html('<time datetime="{}" title="{}">{}</time>', *full(local), short)


def full(local: datetime) -> tuple[str, str]:
    """(ISO 8601, the same for people with the zone's name)."""
    return local.isoformat(), f"{clock(local)} {local.tzname() or ''}".rstrip()


def full_time(moment: datetime | None) -> str:
    """A moment in full, to the second, with its zone: "2026-11-27 10:00:03
    UTC" (for a deadline, beside the time left rather than how soon)."""
    if moment is None:
        return "-"
    iso, text = full(timezone.localtime(moment))
    return format_html('<time datetime="{}">{}</time>', iso, text)


def when(moment: datetime | None, now: datetime | None = None) -> str:
    """A moment to the second and how long ago (or how soon) it is:
    "10:00:03 (3 min ago)" in a list, on two lines."""
    if moment is None:
        return "-"
    return format_html(
        '{}<br><span class="jobs-note">{}</span>',
        short_time(moment, now),
        relative(moment, now),
    )


def moment(value: datetime | None, now: datetime | None = None) -> str:
    """A moment in full, to the second, and how long ago (or how soon) it is:
    "2026-11-27 10:00:03 UTC (3 min ago)", for a job's page."""
    if value is None:
        return "-"
    local = timezone.localtime(value)
    iso, text = full(local)
    return format_html(
        '<time datetime="{}">{}</time> <span class="jobs-note">({})</span>',
        iso,
        text,
        relative(value, now),
    )


def lease(deadline: datetime, now: datetime | None = None) -> str:
    """When a reservation ends: "lease ends in 4 min", or "lease expired 3 s ago"
    (the rescuer will give the job back)."""
    left = deadline - (now or timezone.now())
    if left.total_seconds() >= 0:
        return _("lease ends in %s") % duration(left)
    return _("lease expired %s ago") % duration(left)


def pretty_json(value: Any) -> str:
    """JSON indented for reading, in a ``<pre>``."""
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    return format_html('<pre class="jobs-json">{}</pre>', text)


def progress_bar(progress: dict[str, Any] | None) -> str:
    """A job's reported progress: a bar when it gave a total, and its message."""
    if progress and not isinstance(progress, dict):
        return pretty_json(progress)
    if not progress:
        return ""
    done, total = progress.get("done"), progress.get("total")
    message = progress.get("message") or ""
    if not all(isinstance(n, int | float) for n in (done, total or 0)):
        return pretty_json(progress)  # not what a worker writes
    if total:
        return format_html(
            '<progress class="jobs-progress" value="{}" max="{}"></progress> '
            '<span class="jobs-note">{}/{} {}</span>',
            done,
            total,
            f"{done:g}",
            f"{total:g}",
            message,
        )
    return format_html('<span class="jobs-note">{} {}</span>', f"{done:g}", message)
