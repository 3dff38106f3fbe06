"""Client side of one measurement, run by the orchestrator as a fresh process:

    python -m harness.runner PEER ACTION [--n N] [--job noop|orm|async] [--poll S] [--seed K]

ACTION:
  single   W1: warm up, then time N enqueue_noop() calls (one transaction each)
  bulk     W1: warm up, then time one enqueue_noop_bulk(N)
  fill     W2: enqueue N no-op jobs, untimed (bulk API when there is one);
           --job orm: N W2-orm jobs instead (enqueue_orm / enqueue_orm_bulk);
           --job async: N W2-async jobs (enqueue_async / enqueue_async_bulk)
  latency  W3: N jobs one at a time against an idle worker; prints latencies

The last stdout line is "BENCH_RESULT {json}".
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import time

WARMUP = 10  # W1 warm-up enqueues (connection setup, first-query costs)
LAT_WARMUP = 3  # W3 warm-up jobs (worker fully started and idle)
LAT_BASE_GAP = 0.03  # W3: s between "previous job recorded done" and next enqueue


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("peer")
    ap.add_argument("action", choices=["single", "bulk", "fill", "latency"])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--job", choices=["noop", "orm", "async"], default="noop", help="fill: which job")
    ap.add_argument("--poll", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--job-timeout", type=float, default=30.0)
    args = ap.parse_args()

    # Django-based peers: set up Django before the adapter module is imported,
    # so its guarded module-level @task definitions exist.
    if os.environ.get("DJANGO_SETTINGS_MODULE"):
        import django

        django.setup()

    from . import common
    from .adapters import load

    ad = load(args.peer)
    ad.client_setup()
    try:
        if args.action == "single":
            for i in range(WARMUP):
                ad.enqueue_noop(-1 - i)
            t0 = time.perf_counter()
            for i in range(args.n):
                ad.enqueue_noop(i)
            dt = time.perf_counter() - t0
            common.emit({"n": args.n, "seconds": dt, "warmup": WARMUP})
        elif args.action == "bulk":
            ad.enqueue_noop_bulk(WARMUP)
            t0 = time.perf_counter()
            ad.enqueue_noop_bulk(args.n)
            dt = time.perf_counter() - t0
            common.emit({"n": args.n, "seconds": dt, "warmup": WARMUP})
        elif args.action == "fill":
            one, bulk = {
                "noop": (ad.enqueue_noop, ad.enqueue_noop_bulk),
                "orm": (ad.enqueue_orm, ad.enqueue_orm_bulk),
                "async": (ad.enqueue_async, ad.enqueue_async_bulk),
            }[args.job]
            t0 = time.perf_counter()
            if ad.has_bulk and ad.fill_with_bulk:
                bulk(args.n)
            else:
                for i in range(args.n):
                    one(i)
            common.emit({"n": args.n, "seconds": time.perf_counter() - t0})
        elif args.action == "latency":
            common.emit(latency(ad, args))
    finally:
        ad.client_close()


def latency(ad, args) -> dict:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    rng = random.Random(1000 + args.seed)
    cache: dict = {}

    def wait_start(seq: int, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"job {seq} did not start within {timeout}s")
            sock.settimeout(left)
            data = sock.recv(256).decode().split()
            if int(data[0]) == seq:
                return float(data[1])

    def wait_done(k: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while ad.done_count(k, cache) < k:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{k} jobs not recorded done within {timeout}s")
            time.sleep(0.005)

    done = 0
    for w in range(LAT_WARMUP):  # worker start-up happens here (up to 90 s)
        ad.enqueue_latency(-1 - w, port)
        wait_start(-1 - w, 90.0)
        done += 1
        wait_done(done, 30.0)

    lats, enq = [], []
    for i in range(args.n):
        # Spread arrivals over the worker's poll interval, so a polling
        # worker's phase is sampled uniformly rather than always hit at the
        # same point of its sleep.
        time.sleep(LAT_BASE_GAP + rng.uniform(0.0, args.poll))
        t_enq = time.time()
        ad.enqueue_latency(i, port)
        t_ret = time.time()
        t_start = wait_start(i, args.job_timeout)
        lats.append(t_start - t_enq)
        enq.append(t_ret - t_enq)
        done += 1
        wait_done(done, args.job_timeout)
    return {"n": args.n, "latencies": lats, "enqueue_call_s": enq}


if __name__ == "__main__":
    main()
