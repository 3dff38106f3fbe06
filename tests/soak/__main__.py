"""``python -m tests.soak``: run one soak and print its table (see README)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .driver import Config, Soak
from .instance import INSTANCES
from .kinds import KINDS, parse_kinds


def parse(argv: list[str]) -> Config:
    parser = argparse.ArgumentParser(
        prog="python -m tests.soak",
        description="Real workers drain mixed jobs while chaos strikes; "
        "the figures come from the data. Exit status 1 if a gated figure is not 0.",
    )
    parser.add_argument(
        "--minutes", type=float, default=2.0, help="of chaos (default 2)"
    )
    parser.add_argument(
        "--workers", type=int, default=4, help="worker processes (default 4)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=2, help="per worker (default 2)"
    )
    parser.add_argument(
        "--jobs", type=int, default=3000, help="jobs to enqueue (default 3000)"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument(
        "--kinds",
        help=f"comma-separated kinds to enqueue (default all: {','.join(KINDS)})",
    )
    parser.add_argument(
        "--chaos-interval",
        type=float,
        default=1.2,
        help="mean seconds between chaos actions (default 1.2)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=90.0,
        help="seconds the workers get to finish every job after the chaos (default 90)",
    )
    parser.add_argument(
        "--database",
        choices=sorted(INSTANCES),
        default="postgresql",
        help="the private database the soak starts (default postgresql)",
    )
    parser.add_argument("--no-chaos", action="store_true", help="a baseline: no faults")
    parser.add_argument(
        "--run-dir", type=Path, help="where logs go (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    try:
        parse_kinds(args.kinds)
    except ValueError as exc:
        parser.error(str(exc))
    if min(args.workers, args.concurrency, args.jobs) < 1 or args.minutes <= 0:
        parser.error("--workers, --concurrency, --jobs and --minutes must be positive")
    return Config(
        minutes=args.minutes,
        workers=args.workers,
        concurrency=args.concurrency,
        jobs=args.jobs,
        seed=args.seed,
        kinds=args.kinds,
        chaos_interval=args.chaos_interval,
        settle=args.settle,
        chaos=not args.no_chaos,
        run_dir=args.run_dir,
        database=args.database,
    )


def main(argv: list[str] | None = None) -> int:
    soak = Soak(parse(sys.argv[1:] if argv is None else argv))
    try:
        return soak.run()
    except KeyboardInterrupt:
        # Every worker and the instance were stopped on the way out.
        print(f"soak interrupted; logs so far in {soak.run_dir}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
