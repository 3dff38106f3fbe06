"""``python -m tests.failover``: one failover run, its figures printed."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
from pathlib import Path

from .driver import Config, run
from .evidence import analyse, report


def parse(argv: list[str]) -> Config:
    parser = argparse.ArgumentParser(
        prog="python -m tests.failover",
        description="Real workers on a private primary and standby; the primary "
        "is stopped and the standby promoted mid-run; the figures come from the "
        "promoted server, the jobs' marker files and the workers' logs.",
    )
    parser.add_argument(
        "--async",
        dest="synchronous",
        action="store_false",
        help="asynchronous replication (default: synchronous)",
    )
    parser.add_argument("--jobs", type=int, default=300, help="planned jobs (300)")
    parser.add_argument("--workers", type=int, default=2, help="workers (2)")
    parser.add_argument("--concurrency", type=int, default=4, help="per worker (4)")
    parser.add_argument(
        "--hold",
        type=float,
        default=3.0,
        help="seconds the replication link is held before the primary stops (3)",
    )
    parser.add_argument(
        "--hold-acks",
        action="store_true",
        help="hold only the standby's replies: with synchronous replication, "
        "every commit of the hold is on the standby, its client told it failed",
    )
    parser.add_argument(
        "--gap", type=float, default=1.0, help="seconds from stop to promote (1)"
    )
    parser.add_argument(
        "--any-host",
        action="store_true",
        help="leave target_session_attrs=read-write out of the workers' URL",
    )
    parser.add_argument("--run-dir", type=Path, help="logs and evidence (temp dir)")
    args = parser.parse_args(argv)
    if min(args.jobs, args.workers, args.concurrency) < 1:
        parser.error("--jobs, --workers and --concurrency must be positive")
    if min(args.hold, args.gap) < 0:
        parser.error("--hold and --gap cannot be negative")
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="django-jobs-failover-"))
    return Config(
        synchronous=args.synchronous,
        jobs=args.jobs,
        workers=args.workers,
        concurrency=args.concurrency,
        hold=args.hold,
        acks_only=args.hold_acks,
        gap=args.gap,
        any_host=args.any_host,
        run_dir=run_dir,
    )


def main(argv: list[str] | None = None) -> int:
    config = parse(sys.argv[1:] if argv is None else argv)
    # SIGTERM unwinds like Ctrl-C: the workers are killed and both servers
    # stopped and removed on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    figures = analyse(run(config))
    (config.run_dir / "figures.json").write_text(json.dumps(figures, indent=1))
    print(report(figures))
    print(f"logs, evidence and figures: {config.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
