"""A paginator that counts at most a few thousand rows.

The admin counts every matching row to number its pages. Over a million jobs
that COUNT is the slowest query of the page, and nobody pages through more
than a few hundred pages of jobs: they filter. So the count stops at
``CAP``; the page footer then says "10,000+" and the last page offered is
the one that holds the 10,000th job.
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.utils.functional import cached_property

CAP = 10_000


class CappedPaginator(Paginator):
    cap = CAP

    @cached_property
    def count(self) -> int:
        """The number of rows, or ``cap + 1`` when there are more than ``cap``."""
        queryset = self.object_list.order_by()
        return queryset[: self.cap + 1].count()

    @property
    def capped(self) -> bool:
        return self.count > self.cap
