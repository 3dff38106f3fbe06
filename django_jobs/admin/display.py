"""How jobs look in the console: state badges, ages, countdowns and JSON.

Plain functions of a value, so that the job list, the job page and the
dashboard show the same thing the same way.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _

from ..states import DELAYED, State

#: Every state a job can show, in the order of its life.
DISPLAY_STATES = (State.READY, DELAYED, State.RESERVED, State.DONE, State.BURIED)


def state_badge(state: str) -> str:
    """A coloured label for a display state (the colours are in styles.html)."""
    return format_html('<span class="jobs-state jobs-state-{0}">{0}</span>', state)


def duration(delta: timedelta) -> str:
    """A short human duration: "42 s", "3 min", "2 h 5 min", "3 d 4 h"."""
    seconds = int(abs(delta.total_seconds()))
    if seconds < 60:
        return _("%d s") % seconds
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return _("%d min") % minutes
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return _("%(h)d h %(m)d min") % {"h": hours, "m": minutes}
    days, hours = divmod(hours, 24)
    return _("%(d)d d %(h)d h") % {"d": days, "h": hours}


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago ``moment`` was, or "" if there is none."""
    if moment is None:
        return ""
    return duration((now or timezone.now()) - moment)


def countdown(deadline: datetime | None, now: datetime | None = None) -> str:
    """Time left until ``deadline``: "in 42 s", or "expired 3 s ago"."""
    if deadline is None:
        return ""
    left = deadline - (now or timezone.now())
    if left.total_seconds() >= 0:
        return _("in %s") % duration(left)
    return _("expired %s ago") % duration(left)


def short_time(moment: datetime | None, now: datetime | None = None) -> str:
    """A clock time if ``moment`` is today, else a date too; in full on hover.

    Plain ``strftime``: the job list shows a hundred of these, and Django's
    localised formatting costs as much as the rest of the row.
    """
    if moment is None:
        return "-"
    local = timezone.localtime(moment)
    today = timezone.localtime(now or timezone.now()).date()
    short = local.strftime("%H:%M:%S" if local.date() == today else "%b %d, %H:%M")
    full = local.isoformat(sep=" ", timespec="seconds")
    return format_html('<span title="{}">{}</span>', full, short)


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
