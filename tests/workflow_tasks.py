"""Tasks for the workflow tests: the talk's pipeline in miniature.

Three crawls (one of which may find pages and enqueue a job per page),
then match (reads the crawls' results), analyze, decide, post; and a
report that runs anyway.
"""

from __future__ import annotations

import time

from django_jobs.compat import task
from django_jobs.workflows import after, detached, workflow

from .models import Record


@task()
def crawl(source: str, rows: int = 10, pages: int = 0, fail: bool = False) -> dict:
    """Crawl ``source``: ``pages`` page jobs join the run (fan-out)."""
    if fail:
        raise RuntimeError(f"{source} answered 503")
    if pages:
        page.enqueue_many([((source, n), {}) for n in range(pages)])
    Record.objects.create(key=f"crawl {source}")
    return {"source": source, "rows": rows}


@task()
def page(source: str, number: int) -> int:
    Record.objects.create(key=f"page {source} {number}")
    return number


@task(takes_context=True)
def match(context) -> dict:
    """Combine the crawls: by name where they were named, in order anyway."""
    upstream = context.upstream
    Record.objects.create(key="match", job_id=str(context.job_id))
    named = {name: upstream[name].return_value["rows"] for name in upstream.names}
    pages = sorted(v for v in upstream.return_values if isinstance(v, int))
    return {"named": named, "count": len(upstream), "pages": pages}


@task(takes_context=True)
def analyze(context) -> int:
    Record.objects.create(key="analyze")
    return sum(context.upstream[0].return_value["named"].values())


@task(takes_context=True)
def report(context) -> list:
    """Runs anyway: says which upstream jobs succeeded."""
    Record.objects.create(key="report")
    return [result.status for result in context.upstream]


@task()
def notify(text: str) -> str:
    return text


@task()
def crawl_and_notify(source: str) -> str:
    """A step that enqueues a job its workflow should not wait for."""
    with detached():
        notify.enqueue(f"{source} crawled")
    return source


@task()
def slow(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@task(takes_context=True)
def loop(context) -> None:
    """Fan out a job that would wait for what waits for this step: a cycle."""
    from django_jobs.models import Dependency

    waiting = Dependency.objects.filter(upstream_id=context.job_id)
    with after(waiting.values_list("downstream_id", flat=True).first()):
        notify.enqueue("never")


def pipeline(name: str = "nightly", *, fail: str = "", **options):
    """The tests' workflow: three crawls (``fail`` names one that raises,
    with one attempt), match after them by name, analyze after match.
    Returns the workflow row, the crawls by source, match and analyze."""
    with workflow(name, **options) as flow:
        crawls = {
            source: crawl.using(max_attempts=1).enqueue(source, fail=source == fail)
            for source in ("merchant", "adwords", "analytics")
        }
        with after(**crawls):
            matched = match.enqueue()
        with after(matched):
            analyzed = analyze.enqueue()
    return flow, crawls, matched, analyzed
