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


def state_badge(state: str) -> str:
    """A coloured label for a display state (the colours are in styles.html)."""
    return format_html('<span class="jobs-state jobs-state-{0}">{0}</span>', state)


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
    if not progress:
        return ""
    done, total = progress.get("done"), progress.get("total")
    message = progress.get("message") or ""
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
