"""Orchestrator. Runs workloads x peers x variants x repetitions and appends one
JSON line per run to the output file.

    python -m harness.bench [--peers a,b] [--workloads W1,W2,W2-iso,W2-orm,W3]
                            [--reps 3] [--out results/raw.jsonl]

W2-orm is W2 with jobs that run one statement through Django's ORM
connection (common.orm_select), for the peers whose variants("W2-orm") lists
any (the others are skipped silently, as for W2-iso).

W2-async (not in the default list: --workloads W2-async) is W2 with 1,000
jobs (--w2-async-n) that each wait 100 ms on I/O (common.async_io awaited, or
common.sync_io in a thread / process for sync-only peers), drained by 2
worker processes or 2 child processes, with the peer's in-process
concurrency (coroutines, threads) at 100 each where it has one. Every W2-style
record also carries the CPU of the worker processes and of the descendants
they reaped (this process's RUSAGE_CHILDREN over the run, start-up and
shutdown included): cpu_ms_per_job.

Loop order is rep -> workload -> peer -> variant, so the peers of one
workload run back to back and repetitions are interleaved in time (the
machine is shared and noisy; medians over reps are reported).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from . import common
from .adapters import available, load
from .base import Adapter, Variant

W1_N = 5000
W2_N = 2000
W2_ORM_N = 1000
W2_ASYNC_N = 1000
W3_N = 100
POLL_EVERY = 0.02  # W2: how often the backend's done count is polled (s)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run_client(ad: Adapter, args: list[str], timeout: float, extra_env: dict | None = None,
               watch: list[common.Proc] | None = None) -> dict:
    """Run harness.runner in the peer's environment; fail fast if a watched
    worker process dies meanwhile."""
    argv = [sys.executable, "-m", "harness.runner", ad.name, *args]
    env = ad.env()
    env.update(extra_env or {})
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(argv, env=env, cwd=str(common.BENCH_DIR),
                             stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True)
        deadline = time.monotonic() + timeout
        try:
            while p.poll() is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"client {args[0]} ran over {timeout:.0f}s")
                dead = [w for w in (watch or []) if not w.alive()]
                if dead:
                    raise RuntimeError(f"worker exited early, see {dead[0].log_path}")
                time.sleep(0.1)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    for line in reversed(stdout.splitlines()):
        if line.startswith("BENCH_RESULT "):
            return json.loads(line[len("BENCH_RESULT "):])
    raise RuntimeError(f"client {args[0]} failed rc={p.returncode}: {(stderr or stdout)[-1500:]}")


def start_workers(ad: Adapter, v: Variant, tag: str) -> list[common.Proc]:
    env = ad.env()
    env.update(v.env)
    return [
        common.Proc(argv, env, f"{ad.name}-{tag}-{v.name}-{k}.log")
        for k, argv in enumerate(v.workers)
    ]


def stop_workers(procs: list[common.Proc]) -> None:
    for p in procs:
        p.stop()


# ------------------------------------------------------------------ W1
def run_w1(ad: Adapter, v: Variant, n: int) -> dict:
    n = v.jobs or n
    ad.reset()
    common.checkpoint()
    res = run_client(ad, [v.action, "--n", str(n)], timeout=600, extra_env=v.env)
    total = ad.total_count({})
    expected = n + res.get("warmup", 0)
    if total != expected:
        raise RuntimeError(f"backend holds {total} jobs, expected {expected}")
    return {
        "variant": v.name,
        "n": n,
        "seconds": res["seconds"],
        "jobs_per_s": n / res["seconds"],
        "note": v.note,
    }


# ------------------------------------------------------------------ W2
def run_w2(ad: Adapter, v: Variant, n: int, tag: str, timeout: float, job: str = "noop") -> dict:
    """W2 / W2-iso (no-op jobs) and W2-orm (job="orm"): drain n pre-enqueued jobs."""
    n = v.jobs or n
    ad.reset()
    run_client(ad, ["fill", "--n", str(n), "--job", job], timeout=600, extra_env=v.env)
    cache: dict = {}
    if ad.done_count(n, cache) != 0:
        raise RuntimeError("jobs done before the worker started")
    common.checkpoint()
    cpu0 = common.rusage_children_cpu()
    t0 = time.monotonic()
    procs = start_workers(ad, v, tag)
    first_t = first_d = None
    try:
        while True:
            d = ad.done_count(n, cache)
            now = time.monotonic()
            if d > 0 and first_t is None:
                first_t, first_d = now, d
            if d >= n:
                break
            if now - t0 > timeout:
                raise TimeoutError(f"only {d}/{n} done after {timeout}s")
            dead = [p for p in procs if not p.alive()]
            if dead:
                raise RuntimeError(f"worker exited early, see {dead[0].log_path}")
            time.sleep(POLL_EVERY)
    finally:
        stop_workers(procs)
        for c in cache.values():
            try:
                c.close()
            except Exception:
                pass
    wall = now - t0
    worker_cpu = common.rusage_children_cpu() - cpu0  # the workers were reaped in stop_workers
    steady = (n - first_d) / (now - first_t) if now > first_t else float("nan")
    ad.check_done(n)
    info = ad.run_info(v, n)
    return {
        "variant": v.name,
        "n": n,
        "concurrency": v.concurrency,
        "processes": len(v.workers),
        "seconds": wall,
        "jobs_per_s": n / wall,
        "startup_s": first_t - t0,
        "steady_jobs_per_s": steady,
        "worker_cpu_s": worker_cpu,
        "cpu_ms_per_job": worker_cpu * 1000 / n,
        "note": v.note,
        **info,
    }


# ------------------------------------------------------------------ W3
def run_w3(ad: Adapter, v: Variant, n: int, rep: int) -> dict:
    n = v.jobs or n
    ad.reset()
    common.checkpoint()
    procs = start_workers(ad, v, "W3")
    try:
        budget = 120 + n * (0.3 + v.poll_interval * 1.5)
        res = run_client(
            ad,
            ["latency", "--n", str(n), "--poll", str(v.poll_interval), "--seed", str(rep)],
            timeout=budget,
            extra_env=v.env,
            watch=procs,
        )
    finally:
        stop_workers(procs)
    lat = res["latencies"]
    return {
        "variant": v.name,
        "n": n,
        "poll_interval": v.poll_interval,
        "p50_ms": 1000 * common.percentile(lat, 50),
        "p95_ms": 1000 * common.percentile(lat, 95),
        "max_ms": 1000 * max(lat),
        "mean_ms": 1000 * sum(lat) / len(lat),
        "enqueue_call_p50_ms": 1000 * common.percentile(res["enqueue_call_s"], 50),
        "latencies_ms": [round(1000 * x, 3) for x in lat],
        "note": v.note,
    }


# ------------------------------------------------------------------ main
def _sigterm(signum, frame):
    # `timeout` sends SIGTERM: unwind so `finally` blocks stop the workers.
    raise SystemExit(128 + signum)


def main() -> None:
    signal.signal(signal.SIGTERM, _sigterm)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", default=",".join(available()))
    ap.add_argument("--workloads", default="W1,W2,W2-iso,W2-orm,W3")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default="results/raw.jsonl")
    ap.add_argument("--w1-n", type=int, default=W1_N)
    ap.add_argument("--w2-n", type=int, default=W2_N)
    ap.add_argument("--w2-orm-n", type=int, default=W2_ORM_N)
    ap.add_argument("--w2-async-n", type=int, default=W2_ASYNC_N)
    ap.add_argument("--w3-n", type=int, default=W3_N)
    ap.add_argument("--w2-timeout", type=float, default=240.0)
    ap.add_argument("--variants", default="", help="only run variants whose name is in this comma list")
    ap.add_argument("--extra", choices=["no", "yes", "only"], default="no",
                    help="secondary variants (Variant.extra): skip (default), include, or run only them")
    ap.add_argument("--session", default=time.strftime("%Y%m%dT%H%M%S"))
    args = ap.parse_args()

    peers = [p for p in args.peers.split(",") if p]
    workloads = [{"W-async": "W2-async"}.get(w, w) for w in args.workloads.split(",") if w]
    only_variants = set(filter(None, args.variants.split(",")))
    out = Path(args.out)
    if not out.is_absolute():
        out = common.BENCH_DIR / out
    out.parent.mkdir(parents=True, exist_ok=True)

    env_info = {
        "python": platform.python_version(),
        "postgres": common.pg_server_version(),
        "redis": common.redis_server_version(),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
    }
    log(f"session {args.session}: peers={peers} workloads={workloads} reps={args.reps} env={env_info}")

    adapters: dict[str, Adapter] = {}
    for name in peers:
        try:
            ad = load(name)
            t = time.monotonic()
            ad.prepare()
            adapters[name] = ad
            log(f"prepared {name} in {time.monotonic() - t:.1f}s {ad.versions()}")
        except Exception as e:  # a broken peer must not stop the others
            log(f"SKIP {name}: prepare failed: {e!r}")
            with open(out, "a") as f:
                f.write(json.dumps({"session": args.session, "peer": name, "workload": "prepare",
                                    "ok": False, "error": repr(e)[:2000]}) + "\n")

    for rep in range(args.reps):
        for wl in workloads:
            for name, ad in adapters.items():
                vs = ad.w1_variants() if wl == "W1" else ad.variants(wl)
                for v in vs:
                    vname = v.name
                    if only_variants and vname not in only_variants:
                        continue
                    if (args.extra == "no" and v.extra) or (args.extra == "only" and not v.extra):
                        continue
                    rec = {"session": args.session, "rep": rep, "workload": wl, "peer": name,
                           "title": ad.title, "variant": vname, "extra": v.extra, "versions": ad.versions(),
                           "env": env_info, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
                    t = time.monotonic()
                    try:
                        if v.unavailable:
                            raise RuntimeError(v.unavailable)
                        if wl == "W1":
                            rec.update(run_w1(ad, v, args.w1_n))
                        elif wl in ("W2", "W2-iso"):
                            rec.update(run_w2(ad, v, args.w2_n, wl, args.w2_timeout))
                        elif wl == "W2-orm":
                            rec.update(run_w2(ad, v, args.w2_orm_n, wl, args.w2_timeout, job="orm"))
                        elif wl == "W2-async":
                            rec.update(run_w2(ad, v, args.w2_async_n, wl, args.w2_timeout, job="async"))
                        elif wl == "W3":
                            rec.update(run_w3(ad, v, args.w3_n, rep))
                        else:
                            raise ValueError(f"unknown workload {wl!r}")
                        rec["ok"] = True
                    except Exception as e:
                        rec["ok"] = False
                        rec["error"] = f"{e!r}"[:2000]
                        traceback.print_exc()
                    rec["elapsed_s"] = round(time.monotonic() - t, 2)
                    with open(out, "a") as f:
                        f.write(json.dumps(rec) + "\n")
                    summary = {k: rec[k] for k in ("jobs_per_s", "p50_ms", "p95_ms", "startup_s", "cpu_ms_per_job",
                                                   "error") if k in rec}
                    log(f"rep{rep} {wl} {name} {vname}: {json.dumps(summary)} ({rec['elapsed_s']}s)")

    for ad in adapters.values():
        try:
            ad.cleanup()
        except Exception:
            pass


if __name__ == "__main__":
    main()
