"""A paginator that counts at most a few thousand rows.

The admin counts every matching row to number its pages. Over a million jobs
that COUNT is the slowest query of the page, and nobody pages through more
than a few hundred pages of jobs: they filter. So the count stops at the
cap of ``django_jobs.counting`` (10,000); the page footer then says "more
than 10,000 jobs" and the last page offered is the one that holds the
10,000th job.
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.utils.functional import cached_property

from .. import counting


class CappedPaginator(Paginator):
    #: None: ``counting.CAP``, read when the list is counted.
    cap: int | None = None

    @cached_property
    def limit(self) -> int:
        return counting.cap() if self.cap is None else self.cap

    @cached_property
    def count(self) -> int:
        """The number of rows, or ``limit + 1`` when there are more."""
        return counting.capped_count(self.object_list, self.limit)

    @property
    def capped(self) -> bool:
        return self.count > self.limit
