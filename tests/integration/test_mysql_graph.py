"""The graph's statements where MariaDB and MySQL need their own forms
(``queue.graph_sql``): the count-down as UPDATE ... JOIN, the end of what
waits for a failed job as lock, update by id and read back, ``wait_again``
from a derived table, edges from JSON_TABLE. They run on every database:
the behaviour must be the same.
"""

from __future__ import annotations

import pytest
from django.db import connection

from django_jobs import queue
from django_jobs.models import Dependency, Job
from django_jobs.queue import dependencies
from django_jobs.testing import run_jobs
from django_jobs.workflows import after
from tests import workflow_tasks as w
from tests.integration import test_workflow_races as races

pytestmark = pytest.mark.django_db


def row(result) -> Job:
    return Job.objects.get(pk=result.id)


def chain(first, length: int) -> list:
    """``length`` jobs, each after the one before, the first after ``first``."""
    jobs, previous = [], first
    for _ in range(length):
        with after(previous):
            previous = w.match.enqueue()
        jobs.append(previous)
    return jobs


def test_a_failure_ends_a_deep_chain_and_stops_at_a_job_that_runs_anyway():
    failed = w.crawl.using(max_attempts=1).enqueue("x", fail=True)
    doomed = chain(failed, 6)
    with after(doomed[2], anyway=True):
        anyway = w.report.enqueue()
    beyond = chain(anyway, 2)  # waits only through the job that runs anyway
    run_jobs(tasks=[w.crawl], raise_errors=False)
    for job in map(row, doomed):
        assert (job.state, job.blocked_by_id) == ("buried", int(failed.id))
        assert len(job.errors) == 1
        assert job.errors[0]["exception_class_path"].endswith("UpstreamFailed")
    assert row(anyway).state == "ready"
    assert {row(job).state for job in beyond} == {"waiting"}


def test_ended_rows_are_returned_once_with_their_links():
    failed = w.crawl.using(max_attempts=1).enqueue("x", fail=True)
    first = chain(failed, 1)[0]
    with after(failed, first):  # reached twice down the graph
        both = w.match.enqueue()
    # Jobs that wait but are not yet ended: end them by hand.
    ended = dependencies.end_downstream({"id": int(failed.id)}, "default")
    assert sorted(r["id"] for r in ended) == sorted([int(first.id), int(both.id)])
    assert all(set(r) == {"id", "workflow_id", "batch_id"} for r in ended)
    assert dependencies.end_downstream({"id": int(failed.id)}, "default") == []


def test_the_count_down_never_goes_below_zero():
    ups = [w.crawl.enqueue(str(n)) for n in range(3)]
    with after(*ups):
        down = w.match.enqueue()
    assert row(down).waiting_for == 3
    ids = [int(up.id) for up in ups]
    assert dependencies.count_down(ids[:2], "default") == 1
    assert (row(down).state, row(down).waiting_for) == ("waiting", 1)
    # Counted again (as a rescuer's net may): ready, and the count stays at 0.
    assert dependencies.count_down(ids, "default") == 1
    assert (row(down).state, row(down).waiting_for) == ("ready", 0)
    assert dependencies.count_down(ids, "default") == 0  # not waiting any more


def test_the_count_down_leaves_the_excluded_and_counts_only_anyway_jobs():
    up = w.crawl.enqueue("x")
    with after(up):
        plain = w.match.enqueue()
    with after(up, anyway=True):
        anyway = w.report.enqueue()
    assert dependencies.count_down([int(up.id)], "default", anyway_only=True) == 1
    assert (row(plain).state, row(anyway).state) == ("waiting", "ready")
    excluded = [int(plain.id)]
    assert dependencies.count_down([int(up.id)], "default", exclude=excluded) == 0
    assert row(plain).state == "waiting"


def test_kicking_the_failed_job_makes_each_wait_again_for_what_is_unfinished():
    failed = w.crawl.using(max_attempts=1).enqueue("x", fail=True)
    pending = w.notify.enqueue("not run yet")
    with after(failed, pending):
        both = w.match.enqueue()
    with after(both):
        last = w.analyze.enqueue()
    run_jobs(tasks=[w.crawl], raise_errors=False)
    assert {row(both).state, row(last).state} == {"buried"}
    assert row(pending).state == "ready"
    assert queue.console.kick([int(failed.id)]) == 1
    assert (row(both).state, row(both).waiting_for) == ("waiting", 2)
    assert (row(last).state, row(last).waiting_for) == ("waiting", 1)
    assert (row(both).blocked_by_id, row(both).finished_at) == (None, None)


def test_edges_keep_four_byte_names_and_long_ones():
    up = w.crawl.enqueue("a")
    downs = [w.crawl.enqueue(str(n)) for n in range(2)]
    names = ["pages 📄", "x" * 100]
    dependencies.write_edges(
        [
            (int(up.id), int(down.id), name, n)
            for n, (down, name) in enumerate(zip(downs, names, strict=True))
        ],
        "default",
    )
    stored = Dependency.objects.filter(upstream_id=up.id).order_by("position")
    assert list(stored.values_list("name", "position")) == [
        (names[0], 0),
        (names[1], 1),
    ]


# The races of test_workflow_races.py (marked ``postgres``: SQLite has one
# writer at a time), on MariaDB and MySQL: row locks hold the same way.
on_mysql = pytest.mark.skipif(
    connection.vendor != "mysql", reason="MariaDB's pass (PostgreSQL's: the original)"
)


@on_mysql
@pytest.mark.django_db(transaction=True)
def test_a_completion_that_waited_for_the_enqueue_releases_the_new_job():
    races.test_a_completion_that_waited_for_the_enqueue_releases_the_new_job()


@on_mysql
@pytest.mark.django_db(transaction=True)
def test_a_failure_that_waited_for_the_enqueue_ends_the_new_job():
    races.test_a_failure_that_waited_for_the_enqueue_ends_the_new_job()


@on_mysql
@pytest.mark.django_db(transaction=True)
def test_a_fan_in_completed_from_four_threads_is_released_once():
    ups = [w.crawl.enqueue(str(n)) for n in range(24)]
    with after(*ups):
        down = w.match.enqueue()
    claimed = queue.claim(worker_id="w", limit=24)
    assert len(claimed) == 24

    def complete(jobs) -> None:
        for job in jobs:
            queue.complete(job.pk, token=job.claim_token, return_value=1)

    threads = [races.in_thread(lambda n=n: complete(claimed[n::4])) for n in range(4)]
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert (row(down).state, row(down).waiting_for) == ("ready", 0)
