"""The date drill-down of the job list, from one MIN/MAX query.

Django's own date hierarchy asks the database for the distinct years, months
or days (``SELECT DISTINCT date_trunc(...)``), which reads every matching
row: a million rows for the unfiltered list. Here the links are the years,
months or days between the first and the last ``enqueued_at`` in the table
(within the year or month chosen), which the (enqueued_at) index answers
with two probes. The other filters are left out on purpose: the first ready
job, say, could only be found by reading the index until one turns up. So a
link can lead to an empty list.
"""

from __future__ import annotations

import calendar
import datetime

from django.conf import settings
from django.db.models import Max, Min
from django.utils import formats, timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _


def date_hierarchy(cl) -> dict:
    """The context of ``admin/date_hierarchy.html`` for changelist ``cl``."""
    field = cl.date_hierarchy
    verbose_name = cl.model._meta.get_field(field).verbose_name
    names = {part: f"{field}__{part}" for part in ("year", "month", "day")}
    year, month, day = (_int(cl.params.get(names[part])) for part in names)

    def link(**values) -> str:
        return cl.get_query_string(
            {names[part]: value for part, value in values.items()}, [f"{field}__"]
        )

    context = {"show": True, "field_name": verbose_name}
    if year and month and day:
        chosen = datetime.date(year, month, day)
        context["back"] = {
            "link": link(year=year, month=month),
            "title": capfirst(formats.date_format(chosen, "YEAR_MONTH_FORMAT")),
        }
        context["choices"] = [
            {"title": capfirst(formats.date_format(chosen, "MONTH_DAY_FORMAT"))}
        ]
        return context
    first, last = _range(cl.root_queryset, field, year, month)
    if first is None:
        return {"show": False}
    if not year and first.year == last.year:
        year = first.year
        if not month and first.month == last.month:
            month = first.month
    if year and month:
        context["back"] = {"link": link(year=year), "title": str(year)}
        lo = first.day if (first.year, first.month) == (year, month) else 1
        hi = last.day if (last.year, last.month) == (year, month) else 31
        hi = min(hi, calendar.monthrange(year, month)[1])
        context["choices"] = [
            {
                "link": link(year=year, month=month, day=d),
                "title": capfirst(
                    formats.date_format(
                        datetime.date(year, month, d), "MONTH_DAY_FORMAT"
                    )
                ),
            }
            for d in range(lo, hi + 1)
        ]
    elif year:
        context["back"] = {"link": link(), "title": _("All dates")}
        lo = first.month if first.year == year else 1
        hi = last.month if last.year == year else 12
        context["choices"] = [
            {
                "link": link(year=year, month=m),
                "title": capfirst(
                    formats.date_format(datetime.date(year, m, 1), "YEAR_MONTH_FORMAT")
                ),
            }
            for m in range(lo, hi + 1)
        ]
    else:
        context["choices"] = [
            {"link": link(year=y), "title": str(y)}
            for y in range(first.year, last.year + 1)
        ]
    return context


def _range(queryset, field: str, year: int | None, month: int | None):
    """The first and last ``field`` in the year or month chosen, in local time."""
    if year:
        start = datetime.datetime(year, month or 1, 1)
        end = datetime.datetime(year + (month or 12) // 12, (month or 12) % 12 + 1, 1)
        if settings.USE_TZ:
            start, end = timezone.make_aware(start), timezone.make_aware(end)
        queryset = queryset.filter(**{f"{field}__gte": start, f"{field}__lt": end})
    bounds = queryset.order_by().aggregate(first=Min(field), last=Max(field))
    if bounds["first"] is None:
        return None, None
    if not settings.USE_TZ:
        return bounds["first"], bounds["last"]
    return (timezone.localtime(bounds["first"]), timezone.localtime(bounds["last"]))


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
