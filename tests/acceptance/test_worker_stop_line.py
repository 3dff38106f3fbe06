"""The line a worker logs when it stops counts what it counts: attempts."""

import re

from tests import tasks


def test_the_stop_line_counts_attempts_not_jobs(start_worker):
    tasks.fail.using(max_attempts=2).enqueue("twice")  # one job, two attempts
    worker = start_worker("--burst", "--concurrency", "1")
    assert worker.wait(timeout=60) == 0, worker.output
    stopped = re.search(r"stopped after (\d+) (\S+) in ", worker.output)
    assert stopped, worker.output
    assert stopped.groups() == ("2", "attempt(s)")
