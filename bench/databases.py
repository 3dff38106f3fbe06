"""Enqueue, drain and latency on PostgreSQL beside MariaDB, in one run.

    python bench/databases.py [--runs 3] [--jobs 1000] [--bulk 10000]
        [--drain 300] [--latency 40] [--idle 10] [--no-profile]

Issue 26's targets, measured in the same run so that a machine whose load
drifts skews both databases alike: enqueue on MariaDB at least 0.5x
PostgreSQL's rate (one ``Task.enqueue`` per transaction, and one
``enqueue_many``), a drain with one process per job at ``--concurrency 2``
at least 0.8x PostgreSQL's, and the enqueue-to-start latency on an idle
worker (PostgreSQL wakes it by NOTIFY, MariaDB by polling).

Each measurement runs in a process of its own (``--child``), since a Django
process has one set of settings; the runs are interleaved (every case on
both databases, then again, --runs times, the databases' order alternating)
and the table gives the median and the range. The cases reuse enqueue.py,
drain.py and latency.py. Databases: ``django_jobs_bench_db`` on each server
(created, migrated and truncated here; override with --postgres/--mariadb).

Then, unless --no-profile, one run per database counts the statements a job
costs: per ``Task.enqueue`` and per ``enqueue_many`` job (Django's query log,
and on MariaDB the session's ``Questions`` counter, which also sees the
``SET autocommit`` the driver sends and Django does not log), per completed
job of a drain (every process of the worker logs its statements: Django's
query log with DEBUG on, BEGIN/COMMIT/ROLLBACK included; on MariaDB each
transaction also sends one ``SET autocommit=1`` that is not logged, added
as "+tx"), and per second of an idle worker.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, print_table, setup_django, truncate_jobs

DATABASES = {
    "PostgreSQL": "postgres://postgres@127.0.0.1:5432/django_jobs_bench_db",
    "MariaDB": "mysql://root@127.0.0.1:3306/django_jobs_bench_db",
}
# (case, unit, the least MariaDB / PostgreSQL issue 26 accepts)
CASES = [
    ("enqueue", "jobs/s", 0.5),
    ("bulk", "jobs/s", 0.5),
    ("drain", "jobs/s", 0.8),
    ("latency", "ms p50", None),
    ("latency_p95", "ms p95", None),
]
LABELS = {
    "enqueue": "Task.enqueue, 1 per transaction",
    "bulk": "Task.enqueue_many, 1 call",
    "drain": "drain, runworker --burst -c 2, 1 job/child",
    "latency": "idle worker: enqueue -> start, p50",
    "latency_p95": "idle worker: enqueue -> start, p95",
}


# The child: one measurement on the database of DATABASE_URL, one JSON line.


def child(case: str, options: argparse.Namespace) -> dict:
    setup_django()
    from bench import tasks

    if case == "enqueue":
        import enqueue

        return {"enqueue": enqueue.single(tasks, options.jobs)}
    if case == "bulk":
        import enqueue

        return {"bulk": enqueue.bulk(tasks, options.bulk)}
    if case == "drain":
        import drain

        truncate_jobs()
        return {"drain": drain.drain_once(options.drain, 2, 1)["rate"]}
    if case == "latency":
        import latency

        timings = latency.measure(
            tasks.report_start,
            argparse.Namespace(jobs=options.latency, concurrency=2, gap=0.05),
        )
        return {
            "latency": latency.percentile(timings, 0.5),
            "latency_p95": latency.percentile(timings, 0.95),
        }
    if case == "profile":
        return profile(tasks, options)
    raise SystemExit(f"unknown case {case!r}")


def session_questions() -> dict[str, int]:
    """MariaDB's counters of this session: Questions and the non-zero Com_*."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW SESSION STATUS WHERE Variable_name = 'Questions'"
                       " OR Variable_name LIKE 'Com\\_%%'")  # fmt: skip
        return {name: int(value) for name, value in cursor.fetchall()}


def count_statements(run, mysql: bool) -> dict:
    """Statements ``run`` sends on the default connection: Django's log and,
    on MariaDB, the server's own count (less the SHOW that reads it)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    connection.ensure_connection()
    before = session_questions() if mysql else {}
    with CaptureQueriesContext(connection) as captured:
        run()
    result: dict = {"django": len(captured.captured_queries)}
    result["kinds"] = dict(
        collections.Counter(q["sql"].split(None, 1)[0].upper() for q in captured)
    )
    if mysql:
        after = session_questions()
        result["server"] = after["Questions"] - before["Questions"] - 1
        result["com"] = {
            name: after[name] - before.get(name, 0)
            for name in after
            if name.startswith("Com_") and after[name] != before.get(name, 0)
        }
        result["com"]["Com_show_status"] -= 1
    return result


def logged_worker(extra: list[str], log: Path) -> dict[str, str]:
    """The environment of a worker whose every process logs its statements."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DEBUG": "true",
        "BENCH_STATEMENT_LOG": str(log),
    }


def read_log(log: Path) -> collections.Counter:
    kinds: collections.Counter = collections.Counter()
    if log.exists():
        for line in log.read_text(errors="replace").splitlines():
            _pid, _, sql = line.partition(" ")
            # psycopg's server-bound cursors log "QUERY = '<sql>'".
            sql = sql.strip("'\"").removeprefix("QUERY = ").replace("\\n", " ")
            words = sql.strip("\\'\" ").split()
            if words:
                kinds[words[0].upper().strip(";(")] += 1
    return kinds


def profile(tasks, options: argparse.Namespace) -> dict:
    import drain
    from django.db import connection

    mysql = connection.vendor == "mysql"
    n = 50
    truncate_jobs()
    single = count_statements(lambda: [tasks.noop.enqueue(i) for i in range(n)], mysql)
    truncate_jobs()
    calls = [((i,), {}) for i in range(options.bulk)]
    many = count_statements(lambda: tasks.noop.enqueue_many(calls), mysql)
    truncate_jobs()
    result = {"vendor": connection.vendor, "enqueue": single, "enqueue_n": n}
    result["bulk"] = many
    result["bulk_n"] = options.bulk
    with tempfile.TemporaryDirectory() as directory:
        log = Path(directory) / "drain.log"
        os.environ.update(logged_worker([], log))
        try:
            drain.drain_once(options.drain, 2, 1)
        finally:
            os.environ["DEBUG"] = "false"
            del os.environ["BENCH_STATEMENT_LOG"]
        result["drain"] = dict(read_log(log))
        result["drain_n"] = options.drain
        truncate_jobs()
        if options.idle:
            log = Path(directory) / "idle.log"
            result["idle"], result["idle_s"] = idle_statements(log, options.idle)
    return result


def idle_statements(log: Path, seconds: float) -> tuple[dict, float]:
    """Statements an idle ``runworker --concurrency 2`` sends in ``seconds``,
    counted from 3 s after its start (its start-up excluded)."""
    import latency

    worker = subprocess.Popen(
        [sys.executable, "manage.py", "runworker", "--concurrency", "2"],
        cwd=ROOT, env=logged_worker([], log), stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        latency.wait_until_idle()
        time.sleep(2.0)
        before = read_log(log)
        start = time.monotonic()
        time.sleep(seconds)
        after = read_log(log)
        elapsed = time.monotonic() - start
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    return dict(after - before), elapsed


# The parent: children interleaved, then the table.


def run_child(case: str, url: str, options: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--child", case]
    for name in ("jobs", "bulk", "drain", "latency", "idle"):
        command += [f"--{name}", str(getattr(options, name))]
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": "false"}
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        return {"error": (done.stderr or done.stdout)[-2500:]}
    return json.loads(lines[-1])


def fmt(value: float, unit: str) -> str:
    return f"{value:,.1f}" if unit.startswith("ms") else f"{value:,.0f}"


def table(results: dict, options: argparse.Namespace) -> None:
    names = list(DATABASES)
    rows = []
    for case, unit, target in CASES:
        medians = {}
        cells = []
        for name in names:
            values = results[name][case]
            if not values:
                cells += ["failed", ""]
                continue
            medians[name] = statistics.median(values)
            cells += [
                fmt(medians[name], unit),
                f"{fmt(min(values), unit)}-{fmt(max(values), unit)}",
            ]
        if len(medians) == 2:
            ratio = medians["MariaDB"] / medians["PostgreSQL"]
            verdict = ""
            if target is not None:
                verdict = f">= {target}: {'yes' if ratio >= target else 'NO'}"
            cells += [f"{ratio:.2f}", verdict]
        else:
            cells += ["", ""]
        rows.append([LABELS[case], unit, *cells])
    print_table(
        f"PostgreSQL and MariaDB, {options.runs} interleaved runs (median, range);"
        f" ratio = MariaDB / PostgreSQL",
        ["case", "unit", "PostgreSQL", "range", "MariaDB", "range", "ratio", "target"],
        rows,
    )
    print(
        f"\nenqueue: {options.jobs} jobs; bulk: {options.bulk} jobs; drain:"
        f" {options.drain} no-op jobs, wall time with start-up; latency:"
        f" {options.latency} jobs one at a time, 0.05 s apart, to an idle"
        f" runworker --concurrency 2."
    )


def per_job(kinds: dict, n: int) -> str:
    return f"{sum(kinds.values()) / n:.2f}"


def profile_table(profiles: dict) -> None:
    rows = []
    for name, p in profiles.items():
        if "error" in p:
            rows.append([name, "profile failed", "", "", "", ""])
            continue
        mysql = p["vendor"] == "mysql"
        enq, bulk = p["enqueue"], p["bulk"]
        drain = p["drain"]
        # On MariaDB a transaction's end also sends SET autocommit=1, unlogged.
        extra = drain.get("BEGIN", 0) if mysql else 0
        rows.append([
            name,
            f"{enq['django'] / p['enqueue_n']:.2f}"
            + (f" (server {enq['server'] / p['enqueue_n']:.2f})" if mysql else ""),
            f"{bulk['django'] / p['bulk_n']:.4f}"
            + (f" (server {bulk['server'] / p['bulk_n']:.4f})" if mysql else ""),
            per_job(drain, p["drain_n"])
            + (f" +tx {extra / p['drain_n']:.2f}" if mysql else ""),
            f"{sum(p['idle'].values()) / p['idle_s']:.2f}" if "idle" in p else "",
            ", ".join(f"{k} {v / p['drain_n']:.2f}" for k, v in
                      sorted(drain.items(), key=lambda kv: -kv[1])[:8]),
        ])  # fmt: skip
    print_table(
        "Statements per job (one run; Django's query log, MariaDB's server count"
        " in brackets)",
        [
            "database",
            "per Task.enqueue",
            "per enqueue_many job",
            "per drained job",
            "idle worker /s",
            "drain, by kind, per job",
        ],
        rows,
    )
    for name, p in profiles.items():
        if "error" in p:
            print(f"\n{name} profile failed:\n{p['error']}")
            continue
        print(f"\n{name}: one Task.enqueue, by kind: "
              + ", ".join(f"{k} {v / p['enqueue_n']:.2f}"
                          for k, v in p["enqueue"]["kinds"].items()))  # fmt: skip
        com = p["enqueue"].get("com", {})
        if com:
            print(f"{name}: one Task.enqueue, server Com_*: "
                  + ", ".join(f"{k[4:]} {v / p['enqueue_n']:.2f}"
                              for k, v in com.items() if v))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--bulk", type=int, default=10000)
    parser.add_argument("--drain", type=int, default=300)
    parser.add_argument("--latency", type=int, default=40)
    parser.add_argument("--idle", type=float, default=10)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--postgres", default=DATABASES["PostgreSQL"])
    parser.add_argument("--mariadb", default=DATABASES["MariaDB"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        print(json.dumps(child(options.child, options)))
        return
    for name, url in (("PostgreSQL", options.postgres), ("MariaDB", options.mariadb)):
        if url.rstrip("/").rsplit("/", 1)[-1] in ("postgres", "test", "mysql"):
            sys.exit(f"{name}: refusing to truncate the database of {url}")
        DATABASES[name] = url
    results = {name: {case: [] for case, *_ in CASES} for name in DATABASES}
    errors: list[str] = []
    started = time.monotonic()
    for run in range(options.runs):
        order = list(DATABASES) if run % 2 == 0 else list(reversed(DATABASES))
        for case in ("enqueue", "bulk", "drain", "latency"):
            for name in order:
                if errors_for(errors, name, case):
                    continue  # failed on an earlier run: once is enough
                outcome = run_child(case, DATABASES[name], options)
                if "error" in outcome:
                    errors.append(f"{name} {case} (run {run + 1}):\n{outcome['error']}")
                    continue
                for key, value in outcome.items():
                    results[name][key].append(value)
        print(f"run {run + 1} done after {time.monotonic() - started:.0f} s",
              file=sys.stderr)  # fmt: skip
    table(results, options)
    if not options.no_profile:
        profiles = {
            name: run_child("profile", url, options) for name, url in DATABASES.items()
        }
        profile_table(profiles)
    for error in errors:
        print(f"\nFAILED: {error}")
    print(f"\n(whole run {time.monotonic() - started:.0f} s)")


def errors_for(errors: list[str], name: str, case: str) -> bool:
    return any(e.startswith(f"{name} {case} ") for e in errors)


if __name__ == "__main__":
    main()
