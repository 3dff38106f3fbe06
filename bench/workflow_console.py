"""The console's workflow pages over a workflow of 5,000 jobs: response times.

    python bench/workflow_console.py [--pages 5000] [--others 49] [--runs 7]

DATABASE_URL defaults to postgres://postgres@127.0.0.1:5432/django_jobs_bench
(created and migrated if missing), the database of bench/console.py: its
jobs are left alone. The script writes, on a queue of its own, a workflow
as a crawl writes it: a crawl that finds --pages pages (its fan-out, written
by one ``queue.insert`` from the running crawl, as a worker's child would),
a match step that waits for the crawl and so for every page (the fan-in),
and an analyze step after match. It is caught mid-run: the crawl done, 40%
of the pages done and 2% running, the rest ready, match and analyze
waiting. --others small workflows (the talk's three crawls, match, analyze)
fill the rest of the list's first page. Every run removes the rows of the
previous one first.

Every figure is the response time of a GET through Django's test client,
logged in as a superuser (the whole request: middleware, session, queries,
templates), the median of --runs runs after one warm-up. The target is one
second for the workflow list and the workflow page.
"""

from __future__ import annotations

import argparse
from datetime import timedelta

from common import print_table, setup_django
from console import measure, timing_row

QUEUE = "bench-workflows"
NAME = "bench: crawl"
SMALL = "bench: nightly sync"
TASKS = "myapp.pipeline"


def clear() -> None:
    """Remove the previous run's workflows and jobs (through the queue)."""
    from django_jobs import queue
    from django_jobs.models import Job, Workflow

    ids = list(Job.objects.filter(queue=QUEUE).values_list("pk", flat=True))
    for start in range(0, len(ids), 5000):
        queue.delete(ids[start : start + 5000])
    Workflow.objects.filter(name__in=[NAME, SMALL]).delete()


def insert(task: str, calls: list, **fields) -> list[int]:
    from django_jobs import queue

    path = f"{TASKS}.{task}"
    return queue.insert(calls, task_path=path, queue=QUEUE, **fields).ids


def crawl(pages: int) -> int:
    """The big workflow, caught mid-run; returns its id."""
    from django_jobs import queue
    from django_jobs.scope import After
    from django_jobs.workflows import workflow

    with workflow(NAME, deadline=timedelta(hours=4)) as flow:
        (crawled,) = insert("crawl", [(["merchant"], {})], workflow=flow.pk)
        wait_crawl = After((crawled,), ("crawl",))
        (matched,) = insert("match", [([], {})], workflow=flow.pk, after=wait_crawl)
        insert("analyze", [([], {})], workflow=flow.pk, after=After((matched,), ("",)))
    (running,) = queue.claim(worker_id="bench", queues=[QUEUE], limit=1)
    calls = [(["merchant", n], {}) for n in range(pages)]
    insert("page", calls, workflow=flow.pk, step=crawled, parent=crawled)
    queue.complete(running.pk, token=running.claim_token, return_value={"pages": pages})
    claimed = queue.claim(worker_id="bench", queues=[QUEUE], limit=int(pages * 0.42))
    done = claimed[: int(pages * 0.40)]
    for start in range(0, len(done), 500):
        queue.complete_returning(
            [
                (job.pk, job.claim_token, job.args[1])
                for job in done[start : start + 500]
            ]
        )
    return flow.pk


def small(count: int) -> None:
    """``count`` small workflows: three crawls, match after them, analyze."""
    from django_jobs.scope import After
    from django_jobs.workflows import workflow

    sources = ("merchant", "adwords", "analytics")
    for _ in range(count):
        with workflow(SMALL, deadline=timedelta(hours=4)) as flow:
            crawls = insert("crawl", [([s], {}) for s in sources], workflow=flow.pk)
            after = After(tuple(crawls), sources)
            (matched,) = insert("match", [([], {})], workflow=flow.pk, after=after)
            insert(
                "analyze", [([], {})], workflow=flow.pk, after=After((matched,), ("",))
            )


def cases(flow_id: int) -> list[tuple[str, str]]:
    from django_jobs.models import Job

    fan_in = Job.objects.get(workflow_id=flow_id, task_path=f"{TASKS}.match")
    workflows = "/admin/django_jobs/workflow/"
    jobs = "/admin/django_jobs/job/"
    return [
        ("workflow list", workflows),
        ("workflow list, running", f"{workflows}?state__exact=running"),
        ("the 5,000-job workflow's page", f"{workflows}{flow_id}/change/"),
        ("its fan-in step's page", f"{jobs}{fan_in.pk}/change/"),
        ("its jobs (job list)", f"{jobs}?workflow={flow_id}"),
        ("queue dashboard", "/admin/django_jobs/queue/"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=5000)
    parser.add_argument("--others", type=int, default=49)
    parser.add_argument("--runs", type=int, default=7)
    options = parser.parse_args()
    setup_django()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client

    from django_jobs.models import Job

    settings.DEBUG = False
    clear()
    flow_id = crawl(options.pages)  # first: its pages are the oldest ready jobs
    small(options.others)
    jobs = Job.objects.filter(workflow_id=flow_id).count()
    print(f"Workflow #{flow_id}: {jobs:,} jobs, and {options.others} small ones.")
    user = User.objects.filter(username="bench-admin").first()
    user = user or User.objects.create_superuser("bench-admin", password="x")
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    rows = []
    for label, url in cases(flow_id):
        times, queries = measure(client, url, options.runs)
        rows.append(timing_row(label, times, queries))
    print_table(
        f"Workflow pages, a workflow of {jobs:,} jobs, ms "
        f"(median of {options.runs} requests; target < 1000)",
        ["page", "median", "min", "max", "queries", "slowest query"],
        rows,
    )


if __name__ == "__main__":
    main()
