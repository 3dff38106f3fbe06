"""How many jobs a child is given at once: its portion.

With one job per child (the default) a child gets one job at a time, and a
worker claims exactly as many jobs as it has idle children: nothing waits in
a worker while another worker could run it.

With ``--jobs-per-child N`` (N > 1), meant for floods of tiny jobs, a child
may be given a short portion of jobs that it runs back to back, so that it
never waits for the supervisor's database round trips and one claim serves
many jobs. The portion is sized from the run times observed so far: about
``WINDOW`` seconds of expected work, and a single job once jobs take longer
than that. A job that waited in a portion has its reservation renewed when
it starts (and before it would run out), and unstarted jobs go back,
attempts uncounted, when the worker stops or the child dies.

("Portion", not "batch": a batch is a group of jobs with a callback, see
``django_jobs.batches``.)
"""

from __future__ import annotations


class Portions:
    WINDOW = 0.02  # seconds of expected work given to a child at once
    MAX_PORTION = 50
    SMOOTHING = 0.2

    def __init__(self, jobs_per_child: int) -> None:
        self.enabled = jobs_per_child > 1
        self.average: float | None = None

    def observe(self, seconds: float) -> None:
        """Record the run time of a finished job (as the child measured it)."""
        if self.average is None:
            self.average = seconds
        else:
            self.average += self.SMOOTHING * (seconds - self.average)

    def size(self) -> int:
        """The portion now: 1, unless jobs are known to be quick."""
        if not self.enabled or self.average is None:
            return 1
        return max(1, min(self.MAX_PORTION, int(self.WINDOW / max(self.average, 1e-6))))
