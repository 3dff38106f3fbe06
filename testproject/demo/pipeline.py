"""The talk's pipeline with fake sources: the demo's workflow "nightly sync".

The problem the talk opens with: every night, crawl Google Merchant Center,
AdWords and Analytics, match the rows by product, analyze them, decide new
bids, POST the changes back, all within 4 hours. Here each source is fake
(it sleeps a little and makes up rows), and the 4 hours are scaled down to
4 minutes: a minute of the demo stands for an hour of the night.

The graph, as ``nightly_sync()`` enqueues it::

    crawl_merchant_center ──> fetch_products_page x 20-50 (fan-out) ─┐
    crawl_adwords ────────────────────────────────────────────────────┼─> match
    crawl_analytics ──────────────────────────────────────────────────┘
    match -> analyze -> decide -> post_bids;  report after all, anyway

The AdWords crawl fails now and then (``outage``: the chance that an attempt
meets a 503); it has two attempts, so the console shows a retry, and
sometimes a failed workflow whose report still runs.
"""

from __future__ import annotations

import random
import time
from datetime import timedelta

from django_jobs.compat import task
from django_jobs.workflows import after, workflow

#: The talk's 4 hours, scaled down for the demo: a minute for an hour.
DEADLINE = timedelta(minutes=4)
#: How often an attempt of the AdWords crawl meets an outage, by default.
OUTAGE = 0.25
#: Products per page of the Merchant Center feed, and SKUs the ad sources know.
PAGE_SIZE = 10
CATALOGUE = 500
POST_URL = "https://ads.example.com/v1/bids"


class SourceUnavailable(Exception):
    """A fake source is down; the attempt fails and is retried."""


def nightly_sync(*, pages: int | None = None, outage: float = OUTAGE):
    """Enqueue one run of the pipeline; returns its Workflow row and the
    ``TaskResult`` of each named step (in a dict, by step name).

    ``pages``: how many pages the Merchant Center feed lists (default: 20 to
    50, at random); ``outage``: the chance that an attempt of the AdWords
    crawl fails (0: never, 1: always).
    """
    if pages is None:
        pages = random.randint(20, 50)
    with workflow("nightly sync", deadline=DEADLINE) as flow:
        crawls = {
            "merchant": crawl_merchant_center.enqueue(pages),
            "adwords": crawl_adwords.enqueue(outage),
            "analytics": crawl_analytics.enqueue(),
        }
        with after(**crawls):  # and the pages the merchant crawl adds
            matched = match.enqueue()
        with after(matched):
            analyzed = analyze.enqueue()
        with after(analyzed):
            decided = decide.enqueue()
        with after(decided):
            posted = post_bids.enqueue()
        steps = {
            **crawls,
            "match": matched,
            "analyze": analyzed,
            "decide": decided,
            "post": posted,
        }
        with after(**steps, anyway=True):
            steps["report"] = report.enqueue()
    return flow, steps


def _work(low: float, high: float) -> None:
    """A fake source's latency."""
    time.sleep(random.uniform(low, high))


def _outage(chance: float) -> bool:
    """Whether this attempt meets the source down."""
    return random.random() < chance


def _sku(number: int) -> str:
    return f"SKU-{number:04d}"


# The crawls: three sources, in parallel


@task(ttr=60)
def crawl_merchant_center(pages: int) -> dict:
    """Read the product feed's index: it lists ``pages`` pages. A job per
    page joins the workflow (enqueued from this running step), and what
    waits for this crawl waits for the pages too."""
    _work(0.5, 1.5)
    fetch_products_page.enqueue_many([((number,), {}) for number in range(pages)])
    return {"source": "Merchant Center", "pages": pages}


@task(ttr=30)
def fetch_products_page(number: int) -> list[dict]:
    """One page of the product feed: its products and their prices."""
    _work(0.05, 0.2)
    prices = random.Random(number)
    first = number * PAGE_SIZE
    return [
        {"sku": _sku(n), "price": round(prices.uniform(5, 200), 2)}
        for n in range(first, first + PAGE_SIZE)
    ]


@task(ttr=60, max_attempts=2)
def crawl_adwords(outage: float = OUTAGE) -> dict:
    """Clicks and cost per product. Its API is down now and then: with
    chance ``outage`` an attempt fails, and the next one may get through."""
    _work(0.5, 2.0)
    if _outage(outage):
        raise SourceUnavailable("AdWords API answered 503 Service Unavailable")
    made_up = random.Random("adwords")
    rows = [
        {"sku": _sku(n), "clicks": made_up.randint(0, 400),
         "cost": round(made_up.uniform(1, 300), 2)}
        for n in range(CATALOGUE)
        if made_up.random() < 0.7
    ]  # fmt: skip
    return {"source": "AdWords", "rows": rows}


@task(ttr=60)
def crawl_analytics() -> dict:
    """Sessions and revenue per product."""
    _work(0.5, 2.0)
    made_up = random.Random("analytics")
    rows = [
        {"sku": _sku(n), "sessions": made_up.randint(0, 900),
         "revenue": round(made_up.uniform(0, 1200), 2)}
        for n in range(CATALOGUE)
        if made_up.random() < 0.8
    ]  # fmt: skip
    return {"source": "Analytics", "rows": rows}


# Then one step after another


@task(takes_context=True, ttr=60)
def match(context) -> dict:
    """Join the three crawls by product: the crawls by name, then the
    pages the merchant crawl added (they come after the named jobs)."""
    upstream = context.upstream
    feed = upstream["merchant"].return_value
    ads = {row["sku"]: row for row in upstream["adwords"].return_value["rows"]}
    visits = {row["sku"]: row for row in upstream["analytics"].return_value["rows"]}
    pages = upstream[len(upstream.names) :]
    products = [product for page in pages for product in page.return_value]
    rows = [
        {**product, **ads[product["sku"]], **visits[product["sku"]]}
        for product in products
        if product["sku"] in ads and product["sku"] in visits
    ]
    return {"pages": feed["pages"], "products": len(products), "matched": rows}


@task(takes_context=True, ttr=60)
def analyze(context) -> list[dict]:
    """Return on ad spend per matched product."""
    _work(0.2, 0.6)
    matched = context.upstream[0].return_value["matched"]
    return [
        {"sku": row["sku"], "roas": round(row["revenue"] / row["cost"], 2)}
        for row in matched
    ]


@task(takes_context=True, ttr=60)
def decide(context) -> dict:
    """Raise the bids that pay four times over, lower those that lose money."""
    _work(0.2, 0.6)
    analyzed = context.upstream[0].return_value
    return {
        "raise": [row["sku"] for row in analyzed if row["roas"] >= 4],
        "lower": [row["sku"] for row in analyzed if row["roas"] < 1],
    }


@task(takes_context=True, ttr=60)
def post_bids(context) -> dict:
    """POST the changes back (a fake POST: nothing leaves this machine)."""
    decided = context.upstream[0].return_value
    changes = len(decided["raise"]) + len(decided["lower"])
    _work(0.3, 0.8)
    print(f"POST {POST_URL} ({changes} bid changes): 200 OK (fake)")
    return {"url": POST_URL, "changes": changes, "status": 200}


@task(takes_context=True, ttr=60)
def report(context) -> dict:
    """Runs anyway, when the run succeeded or failed: how each step ended."""
    upstream = context.upstream
    steps = {name: upstream[name].status for name in upstream.names}
    failed = [name for name, status in steps.items() if status != "SUCCESSFUL"]
    posted = upstream["post"].return_value if not failed else None
    summary = (
        f"posted {posted['changes']} bid changes"
        if posted
        else f"nothing posted: {', '.join(failed)} did not succeed"
    )
    print(f"nightly sync: {summary}")
    return {"summary": summary, "steps": steps}
