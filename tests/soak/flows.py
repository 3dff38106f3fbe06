"""The soak's workflow kind: small graphs that run through the chaos.

Each graph is the talk's pipeline in miniature, in a workflow of its own:
three crawls in parallel (one of them fans out to a few page jobs from
inside its run), then ``match`` after the three by name (the fan-in: it
waits for the pages too), then ``analyze``. Some graphs have a crawl that
always fails (``broken``: match and analyze must end without running, the
workflow must fail and say why); some have a ``report`` that runs anyway,
after the crawls and analyze. ``kinds.graph_shape`` draws the shapes.

Every run writes its rows like the other kinds (``tasks.Run``), so the
duplicate window and the overlaps judge these jobs too. A step that reads
its upstream also checks what it read: an upstream job not finished, or
not ended as planned, or a page missing, is written down as an "early" row
(and in its return value), which the report counts (``graphs.py``).
"""

from __future__ import annotations

import random
from datetime import timedelta

from django.db import transaction

from django_jobs.compat import task
from django_jobs.workflows import after, workflow

from .kinds import FAILING, PATIENT
from .records import EARLY
from .tasks import Run

SOURCES = ("merchant", "adwords", "analytics")
KIND = "workflow"
SUCCESSFUL, FAILED = "SUCCESSFUL", "FAILED"


def enqueue_graph(key: int, shape: dict, deadline: timedelta) -> list[int]:
    """Enqueue one graph of ``shape`` (see kinds.graph_shape) in a workflow
    of its own, all or nothing; returns the ids of the jobs it enqueued
    (the pages come later, from the fanning-out crawl)."""
    broken_source = shape["broken"]
    with transaction.atomic(), workflow(f"soak graph {key}", deadline=deadline):
        crawls = {}
        for source in SOURCES:
            if source == broken_source:
                crawls[source] = broken.enqueue(key, source)
            else:
                pages = shape["pages"] if source == shape["fanout"] else 0
                crawls[source] = crawl.enqueue(key, source, pages)
        with after(**crawls):
            matched = match.enqueue(key, shape["fanout"])
        with after(matched):
            analyzed = analyze.enqueue(key)
        results = [*crawls.values(), matched, analyzed]
        if shape["report"]:
            with after(**crawls, analyze=analyzed, anyway=True):
                results.append(report.enqueue(key, broken_source))
    return [int(result.id) for result in results]


def _nap(run: Run, low: float, high: float) -> None:
    run.sleep(round(random.uniform(low, high), 3))


@task(takes_context=True, max_attempts=PATIENT)
def crawl(context, key: int, source: str, pages: int) -> dict:
    """A crawl; with ``pages``, a page job per page joins the workflow
    (and holds what waits for this crawl)."""
    run = Run(context, KIND)
    _nap(run, 0.05, 0.4)
    if pages:
        page.enqueue_many([((key, source, n), {}) for n in range(pages)])
    run.done()
    return {"source": source, "pages": pages}


@task(takes_context=True, max_attempts=FAILING)
def broken(context, key: int, source: str) -> None:
    """A crawl that always fails: it is buried after its attempts."""
    Run(context, KIND).close()
    raise ValueError(f"soak: the {source} crawl of graph {key} always fails")


@task(takes_context=True, max_attempts=PATIENT)
def page(context, key: int, source: str, number: int) -> int:
    run = Run(context, KIND)
    _nap(run, 0.02, 0.15)
    run.done()
    return number


@task(takes_context=True, max_attempts=PATIENT)
def match(context, key: int, fanout: str) -> dict:
    """The fan-in: the three crawls by name, then the pages of ``fanout``.
    Each must have succeeded; every page the crawl announced must be here."""
    run = Run(context, KIND)
    upstream = context.upstream
    problems = []
    if sorted(upstream.names) != sorted(SOURCES):
        problems.append(f"upstream names {upstream.names}")
    for name in upstream.names:
        if upstream[name].status != SUCCESSFUL:
            problems.append(f"{name} is {upstream[name].status}")
    pages = upstream[len(upstream.names) :]
    problems += [f"a page is {p.status}" for p in pages if p.status != SUCCESSFUL]
    if not problems:
        announced = upstream[fanout].return_value["pages"]
        seen = {p.return_value for p in pages}
        if seen != set(range(announced)):
            problems.append(f"pages {sorted(seen)} of {announced} announced")
    return _finish(run, problems, crawls=len(upstream.names), pages=len(pages))


@task(takes_context=True, max_attempts=PATIENT)
def analyze(context, key: int) -> dict:
    run = Run(context, KIND)
    problems = []
    [matched] = context.upstream
    if matched.status != SUCCESSFUL:
        problems.append(f"match is {matched.status}")
    elif matched.return_value.get("problems"):
        problems.append("match saw problems")
    _nap(run, 0.02, 0.15)
    return _finish(run, problems)


@task(takes_context=True, max_attempts=PATIENT)
def report(context, key: int, broken_source: str | None) -> dict:
    """Runs anyway: every upstream job has ended, as planned (the broken
    crawl and analyze failed if there is a broken crawl; the rest succeeded)."""
    run = Run(context, KIND)
    upstream = context.upstream
    failing = {broken_source, "analyze"} if broken_source else set()
    problems = []
    for name in upstream.names:
        planned = FAILED if name in failing else SUCCESSFUL
        if upstream[name].status != planned:
            problems.append(f"{name} is {upstream[name].status}, not {planned}")
    pages = upstream[len(upstream.names) :]
    problems += [f"a page is {p.status}" for p in pages if p.status != SUCCESSFUL]
    return _finish(run, problems, read=len(upstream))


def _finish(run: Run, problems: list[str], **seen) -> dict:
    """Write the "early" row if the upstream was not as planned, then the
    run's "done" row."""
    if problems:
        run.write(EARLY, 0, patience=3.0)
    run.done()
    return {"problems": problems, **seen}
