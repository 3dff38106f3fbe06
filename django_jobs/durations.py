"""Moments and durations as people read them: "42 s", "3 min ago", "in 5 min".

Plain text, shared by the console (which wraps it in HTML) and the ``jobs``
command, so that both say the same thing the same way.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.translation import gettext as _


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


def relative(moment: datetime | None, now: datetime | None = None) -> str:
    """ "3 min ago" for a past moment, "in 3 min" for a future one."""
    if moment is None:
        return ""
    delta = moment - (now or timezone.now())
    if delta.total_seconds() > 0:
        return _("in %s") % duration(delta)
    return _("%s ago") % duration(delta)


def clock(moment: datetime, *, date: bool = True) -> str:
    """The local time to the second: "2026-11-27 10:00:03" (or "10:00:03")."""
    local = timezone.localtime(moment) if timezone.is_aware(moment) else moment
    return local.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S")


def moment_text(moment: datetime | None, now: datetime | None = None) -> str:
    """ "2026-11-27 10:00:03 UTC (3 min ago)", or "-" for no moment."""
    if moment is None:
        return "-"
    zone = timezone.localtime(moment).tzname() if timezone.is_aware(moment) else ""
    return f"{clock(moment)} {zone} ({relative(moment, now)})".replace("  ", " ")
