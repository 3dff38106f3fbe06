"""Aggregate results/raw.jsonl into RESULTS.md (medians over repetitions).

    python -m harness.report [--raw results/raw.jsonl] [--sessions S1,S2]
                             [--out RESULTS.md] [--command "..."]

Text below the KEEP marker in an existing RESULTS.md is preserved.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import OrderedDict, defaultdict
from pathlib import Path

from . import common

KEEP = "<!-- text below this line is kept when report.py regenerates the file -->"


def fmt(x, digits=0):
    if x is None:
        return "-"
    if isinstance(x, float) and x != x:
        return "nan"
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def rng(vals, digits=0):
    return f"{fmt(min(vals), digits)}–{fmt(max(vals), digits)}"


def dig(v: float) -> int:
    return 0 if v >= 100 else (1 if v >= 10 else 2)


def load(raw: Path, sessions: set[str]) -> list[dict]:
    recs = []
    for line in raw.read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if sessions and r.get("session") not in sessions:
            continue
        recs.append(r)
    return recs


def group(recs, workload):
    """(peer, variant) -> runs, ordered by peer priority, then first appearance."""
    from .adapters import ORDER

    g: "OrderedDict[tuple, list]" = OrderedDict()
    for r in recs:
        if r.get("workload") == workload and r.get("ok"):
            g.setdefault((r["peer"], r["variant"]), []).append(r)
    first = {k: i for i, k in enumerate(g)}

    def key(k):
        peer = k[0]
        return (ORDER.index(peer) if peer in ORDER else len(ORDER), peer, first[k])

    return OrderedDict((k, g[k]) for k in sorted(g, key=key))


def vname(r):
    return r["variant"] + (" †" if r.get("extra") else "")


def conc_label(r):
    c = r.get("concurrency")
    p = r.get("processes", 1)
    if c == 0:
        return f"{p} × unlimited"
    return f"{p} × c{c}"


def table_w1(recs):
    rows = ["| peer | variant | N | median jobs/s | min–max | runs | what one enqueue is |",
            "|---|---|---:|---:|---:|---:|---|"]
    for (peer, var), rs in group(recs, "W1").items():
        v = [r["jobs_per_s"] for r in rs]
        rows.append(f"| {rs[0]['title']} | {vname(rs[0])} | {rs[0]['n']:,} | **{fmt(statistics.median(v))}** | "
                    f"{rng(v)} | {len(v)} | {rs[0].get('note', '')} |")
    return "\n".join(rows)


def table_w2(recs, workload, cpu_vs: tuple[str, str] | None = None):
    """The W2 table; with cpu_vs=(peer, variant): also the workers' CPU per job
    and each row's jobs/s and CPU per job over that row's (medians)."""
    groups = group(recs, workload)
    head = ("| peer | variant | procs started × concurrency | N | median jobs/s (wall, incl. start) | min–max | "
            "steady jobs/s (median) | start→first done s (median) |")
    rule = "|---|---|---|---:|---:|---:|---:|---:|"
    base = None
    if cpu_vs:
        head += " worker CPU ms/job (median) |"
        rule += "---:|"
        if cpu_vs in groups and all("cpu_ms_per_job" in r for r in groups[cpu_vs]):
            base = groups[cpu_vs]
            head += f" jobs/s ÷ {base[0]['title']} {cpu_vs[1]} | CPU/job ÷ {base[0]['title']} {cpu_vs[1]} |"
            rule += "---:|---:|"
    rows = [head + " runs | setting |", rule + "---:|---|"]
    for (peer, var), rs in groups.items():
        v = [r["jobs_per_s"] for r in rs]
        st = [r["steady_jobs_per_s"] for r in rs]
        su = [r["startup_s"] for r in rs]
        m = statistics.median(v)
        extra = ""
        if cpu_vs:
            cpus = [r["cpu_ms_per_job"] for r in rs if "cpu_ms_per_job" in r]
            c = statistics.median(cpus) if cpus else None
            extra = f" {fmt(c, 2)} |"
            if base is not None:
                b_rate = statistics.median(r["jobs_per_s"] for r in base)
                b_cpu = statistics.median(r["cpu_ms_per_job"] for r in base)
                extra += f" {m / b_rate:.1f}× | {'-' if c is None else f'{c / b_cpu:.2f}×'} |"
        rows.append(
            f"| {rs[0]['title']} | {vname(rs[0])} | {conc_label(rs[0])} | {rs[0]['n']:,} | **{fmt(m, dig(m))}** | "
            f"{rng(v, dig(m))} | {fmt(statistics.median(st), dig(statistics.median(st)))} | "
            f"{fmt(statistics.median(su), 2)} |{extra} {len(v)} | {rs[0].get('note', '')} |")
    return "\n".join(rows)


def table_w3(recs):
    rows = ["| peer | variant | idle wake-up | N/run | p50 ms (median of runs) | p50 min–max | "
            "p95 ms (median of runs) | p95 min–max | max ms (all runs) | enqueue call p50 ms | runs | setting |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for (peer, var), rs in group(recs, "W3").items():
        p50 = [r["p50_ms"] for r in rs]
        p95 = [r["p95_ms"] for r in rs]
        mx = max(r["max_ms"] for r in rs)
        poll = rs[0].get("poll_interval", 0)
        wake = "push" if not poll else f"poll {poll:g} s"
        m50, m95 = statistics.median(p50), statistics.median(p95)
        rows.append(
            f"| {rs[0]['title']} | {vname(rs[0])} | {wake} | {rs[0]['n']} | **{fmt(m50, dig(m50))}** | "
            f"{rng(p50, dig(m50))} | **{fmt(m95, dig(m95))}** | {rng(p95, dig(m95))} | "
            f"{fmt(mx, dig(mx))} | {fmt(statistics.median(r['enqueue_call_p50_ms'] for r in rs), 2)} | "
            f"{len(rs)} | {rs[0].get('note', '')} |")
    return "\n".join(rows)


PHYS_LABELS = {
    "pg-insert": "pgbench, 1 connection: single-row INSERT, autocommit",
    "pg-update": "pgbench, 1 connection: UPDATE ... WHERE id = random (100k rows)",
    "pg-claim-c1": "pgbench, 1 connection: claim (UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED)) + finish UPDATE = 2 commits/job",
    "pg-claim-c2": "same, 2 connections",
    "py-insert": "psycopg 3 loop, 1 connection: single-row INSERT, autocommit",
    "py-update": "psycopg 3 loop, 1 connection: UPDATE by id, autocommit",
    "fork": "(i) os.fork() + child _exit + waitpid, parent has Django set up + a DB connection",
    "fork+pgconn": "(i') fork, child opens a new PostgreSQL connection + SELECT 1",
    "fresh-python": "subprocess `python -c pass`",
    "fresh-django": "(ii) subprocess `python -c 'import django; django.setup()'`",
    "mp-fork": "multiprocessing 'fork' Process start+join (Django-loaded parent)",
    "mp-forkserver": "(iii) multiprocessing 'forkserver' Process start+join, Django preloaded in the server",
    "mp-spawn": "multiprocessing 'spawn' Process start+join, child runs django.setup()",
    "django-parent-maxrss": "max RSS of the Django-loaded parent",
}


def table_phys(recs):
    rows = ["| measurement | median | min–max | runs | unit |", "|---|---:|---:|---:|---|"]
    seen = OrderedDict()
    for r in recs:
        if r.get("workload") == "PHYS":
            seen.setdefault(r["metric"], []).append(r)
    for metric, rs in seen.items():
        vals = [v for r in rs for v in r["values"]]
        base = metric.replace(" p95", "")
        label = PHYS_LABELS.get(base, base) + (" — p95 of iterations" if metric.endswith(" p95") else "")
        m = statistics.median(vals)
        d = 0 if m >= 100 else (1 if m >= 10 else 2)
        rows.append(f"| {label} | **{fmt(m, d)}** | {rng(vals, d)} | {len(vals)} | {rs[0]['unit']} |")
    return "\n".join(rows)


def versions_table(recs):
    by_peer = OrderedDict()
    for r in recs:
        if r.get("versions") and r.get("title"):
            by_peer.setdefault(r["title"], r["versions"])
    rows = ["| peer | versions |", "|---|---|"]
    for t, v in by_peer.items():
        rows.append(f"| {t} | {', '.join(f'{k} {x}' for k, x in v.items())} |")
    return "\n".join(rows)


def failures(recs):
    bad = [r for r in recs if not r.get("ok")]
    if not bad:
        return "None."
    counts = defaultdict(list)
    for r in bad:
        counts[(r.get("workload"), r.get("peer"), r.get("variant"))].append(r.get("error", "")[:300])
    return "\n".join(f"- {w} {p} {v}: {len(e)} failed run(s); first error: `{e[0]}`"
                     for (w, p, v), e in counts.items())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", default="results/raw.jsonl")
    ap.add_argument("--sessions", default="")
    ap.add_argument("--out", default="RESULTS.md")
    ap.add_argument("--command", default="./run_all.sh")
    args = ap.parse_args()
    raw = Path(args.raw) if Path(args.raw).is_absolute() else common.BENCH_DIR / args.raw
    out = Path(args.out) if Path(args.out).is_absolute() else common.BENCH_DIR / args.out
    sessions = set(filter(None, args.sessions.split(",")))
    recs = load(raw, sessions)
    if not recs:
        raise SystemExit("no records")

    dates = sorted(r["date"] for r in recs if r.get("date"))
    env = next((r["env"] for r in recs if r.get("env") and r.get("workload") != "PHYS"), {})
    kept = ""
    if out.exists() and KEEP in out.read_text():
        kept = out.read_text().split(KEEP, 1)[1]

    md = f"""# Peer benchmarks for django_jobs

Generated by `harness/report.py` from `results/raw.jsonl`.

- Command: `{args.command}`
- Sessions: {", ".join(sorted({r["session"] for r in recs}))}
- Date: {dates[0]} → {dates[-1]}
- Machine: {env.get("cpus", "?")} CPUs (shared, noisy), Linux {env.get("kernel", "?")}; PostgreSQL {env.get("postgres", "?")} (fsync on, synchronous_commit on, defaults); Redis {env.get("redis", "?")} (no persistence); Python {env.get("python", "?")}
- † = secondary variant (run with `EXTRA=only`, in its own session right after the main one).
- Every number is the median over repetitions; min–max is over the same runs. Repetitions are interleaved (rep → workload → peer → variant), so the peers of a table ran back to back.
- No-op job = a function returning 1 (pgqueuer: `async def` returning None, as 1.6 rejects sync entrypoints). W3 jobs first send `time.time()` in a UDP datagram to the client.

## W1 — enqueue (one process; one transaction / round trip per job unless "bulk")

{table_w1(recs)}

## W2 — drain N pre-enqueued no-op jobs

Wall time = from starting the worker process(es) until the backend records all N jobs done (polled every 20 ms); it includes worker start-up. "steady" = jobs done after the first one was seen, divided by the time since.

{table_w2(recs, "W2")}

## W2-iso — a fresh / forked process per job

{table_w2(recs, "W2-iso")}

## W2-orm — drain N pre-enqueued jobs that each run one SQL statement through Django's ORM connection

An ORM job is a job function that runs `django.db.connection.cursor().execute("SELECT 1")` (and fetches the row) on the Django `default` database of that peer, its own `bench_<peer>` PostgreSQL database, in a worker process where `django.setup()` has run with the same settings as the enqueuing client: the least a real Django job does. The statement itself is trivial, so the table shows what each queue makes a job pay to get a usable Django connection: a long-lived worker process or thread keeps its connection (db_worker, RQ's SimpleWorker, procrastinate's Django integration, django-q2's workers, django_jobs with `--jobs-per-child`), while a process forked per job (django_jobs' default, RQ's `Worker`) opens a new one for every job, and Celery's Django fixup closes the connection around every task whatever `CONN_MAX_AGE` says. RQ and Celery call `django.setup()` in the worker as django-rq and a Django project's `celery.py` do. Timing as in W2.

{table_w2(recs, "W2-orm")}

## W2-async — drain N pre-enqueued jobs that each wait 100 ms on I/O

Each job waits 100 ms and uses no CPU meanwhile: `await asyncio.sleep(0.1)` in an `async def` task where the peer runs coroutines (django_jobs, procrastinate, pgqueuer, and django-tasks / RQ, which run the coroutine to completion one job at a time), `time.sleep(0.1)` in a pool thread for Celery (no coroutines). Two worker processes (or, for django_jobs, two child processes of one worker), each with the peer's in-process concurrency at 100 where it has one. Timing as in W2. Worker CPU = user + system time of the worker processes and every descendant they reaped (the harness's RUSAGE_CHILDREN over the run: start-up and shutdown included), per job; the ratio columns divide each row's medians by django_jobs' one-process-per-job row (c2). Run it with `WORKLOADS=W2-async` (not in the default list; ~3 min a repetition, most of it the one-job-at-a-time rows).

{table_w2(recs, "W2-async", cpu_vs=("django_jobs", "c2"))}

## W3 — latency on an idle worker (enqueue → job start)

Jobs are enqueued one at a time; the next is enqueued only after the previous one is recorded done, plus a gap of 30 ms + uniform(0, poll interval) so a polling worker is caught at a random point of its sleep. Latency = job's `time.time()` at start − client's `time.time()` just before the enqueue call (so it includes the enqueue commit).

{table_w3(recs)}

## Physical limits of this machine

{table_phys(recs)}

## Versions

{versions_table(recs)}

## Failed runs

{failures(recs)}

{KEEP}{kept}"""
    out.write_text(md)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
