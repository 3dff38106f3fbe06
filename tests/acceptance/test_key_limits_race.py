"""Limits per key hold whatever the number of workers: eight real workers
race over keyed jobs, and the rows' start and end times show that no key
ever had more than N running and no window held more than N starts."""

from collections import defaultdict
from datetime import timedelta

from django_jobs import queue
from django_jobs.models import Job
from tests import key_tasks
from tests.acceptance.conftest import most_at_once, wait_for

KEYS, JOBS_PER_KEY = 6, 12
CONCURRENCY, STARTS_PER_SECOND = 2, 3


#: The rows' times are read from the clocks of different processes just
#: before their statements run: a job whose end committed just before a
#: claim's statement began may show an end a few microseconds after the
#: start the claim wrote. A real excess would last a whole job (0.3 s).
CLOCKS = timedelta(milliseconds=5)


def most_running(intervals) -> int:
    """The most intervals open at once."""
    return most_at_once(
        [(start, 1) for start, _ in intervals]
        + [(end - CLOCKS, -1) for _, end in intervals]
    )


def test_eight_workers_never_exceed_the_limits_per_key(start_worker):
    race(start_worker, workers=8)


def race(start_worker, workers: int) -> None:
    queue.configure(
        "keyed",
        key_concurrency=CONCURRENCY,
        key_rate_limit=f"{STARTS_PER_SECOND}/second",
    )
    key_tasks.sleep_for.enqueue_many(
        [
            ((f"k{key}", 0.3), {"n": n})
            for key in range(KEYS)
            for n in range(JOBS_PER_KEY)
        ]
    )
    for _ in range(workers):
        start_worker("--concurrency", "2", "--queue", "keyed")
    total = KEYS * JOBS_PER_KEY
    wait_for(
        lambda: Job.objects.filter(state="done").count() == total,
        timeout=180,
        message=f"{total} keyed jobs done",
    )
    rows = list(
        Job.objects.values(
            "limit_key", "started_at", "finished_at", "attempts", "worker_ids"
        )
    )
    assert {row["attempts"] for row in rows} == {1}  # one run each: the rows tell it
    by_key = defaultdict(list)
    for row in rows:
        by_key[row["limit_key"]].append((row["started_at"], row["finished_at"]))
    running = {key: most_running(intervals) for key, intervals in by_key.items()}
    assert max(running.values()) == CONCURRENCY, running  # reached, never passed
    windows = defaultdict(int)
    for row in rows:
        windows[row["limit_key"], row["started_at"].replace(microsecond=0)] += 1
    assert max(windows.values()) == STARTS_PER_SECOND, windows  # reached, never passed
    assert len({row["worker_ids"][0] for row in rows}) > 1  # they really raced
