"""bench/capacity.py --anatomy: where an enqueue's, a claim's and a
completion's server CPU goes, measured by taking one piece away at a time.

Each line enqueues --jobs jobs one at a time into an emptied job table,
claims them one at a time (the worker's prepared claim, by a worker whose
row says it has room, so that it also writes the room) and completes them
one at a time (the worker's prepared completion), with one piece removed:
one index of the job table (dropped, then recreated from the definition
pg_indexes gave), every index but the primary key, the two NOTIFY
triggers, every trigger (``DISABLE TRIGGER USER``), the room write
(``room=False``), or the statements' preparation (``prepare=False``: what
the worker gets with Django's default prepare_threshold; the enqueue is
never prepared). Whatever was removed is put back in a ``finally``. The
baseline is measured first and again last (their difference is the
noise); Δ is against their mean. The WAL column leaves out full-page
images (which follow checkpoints). Removing a piece changes what the
database does, not only what it costs: without django_jobs_job_claim the
claim reads the whole table, without the unique indexes nothing stops a
unique job enqueued twice.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import capacity_measure as m
from common import print_table, truncate_jobs


@contextmanager
def without_indexes(definitions: dict[str, str]):
    from django.db import connection

    with connection.cursor() as cursor:
        for name in definitions:
            cursor.execute(f'DROP INDEX "{name}"')
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            for definition in definitions.values():
                cursor.execute(definition)


@contextmanager
def without_triggers(names):
    m.set_triggers(False, names)
    try:
        yield
    finally:
        m.set_triggers(True, names)


def secondary_indexes() -> dict[str, str]:
    """The job table's indexes but its primary key: name -> definition."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i"
            " JOIN pg_class c ON c.relname = i.indexname"
            " JOIN pg_index x ON x.indexrelid = c.oid"
            " WHERE i.tablename = %s AND NOT x.indisprimary ORDER BY 1",
            [m.TABLE],
        )
        return dict(cursor.fetchall())


def user_triggers() -> list[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass"
            " AND NOT tgisinternal ORDER BY 1",
            [m.TABLE],
        )
        return [name for (name,) in cursor.fetchall()]


def variants() -> list[tuple[str, object, dict]]:
    """(piece removed, context that removes it, options of the operations)."""
    indexes = secondary_indexes()
    triggers = user_triggers()
    return [
        ("nothing (baseline)", nullcontext(), {}),
        *(
            (f"index {name}", without_indexes({name: text}), {})
            for name, text in indexes.items()
        ),
        (
            f"all {len(indexes)} indexes but the primary key",
            without_indexes(indexes),
            {},
        ),
        ("the 2 NOTIFY triggers", without_triggers(m.NOTIFY_TRIGGERS), {}),
        (f"all {len(triggers)} triggers", without_triggers("USER"), {}),
        ("the room write (room=False)", nullcontext(), {"room": False}),
        (
            "preparing (prepare=False, as Django's default)",
            nullcontext(),
            {"prepare": False},
        ),
        ("nothing (baseline again)", nullcontext(), {}),
    ]


def written(costs: dict[str, m.Cost]) -> float:
    """WAL bytes but full-page images (which come with checkpoints)."""
    return sum(
        size - images
        for cost in costs.values()
        for _, size, images in cost.records.values()
    )


def run(tasks, options) -> None:
    jobs = options.jobs or 2000
    m.warm_up(tasks.noop.enqueue)
    results = {}
    for label, removed, kwargs in variants():
        runs = []
        with removed:
            for _ in range(options.runs):
                truncate_jobs()
                runs.append(m.one_at_a_time(tasks.noop.enqueue, jobs, **kwargs))
        results[label] = {op: m.median([run[op] for run in runs]) for op in runs[0]}
        print(f"  {label}: done", flush=True)
    truncate_jobs()
    bases = [results["nothing (baseline)"], results["nothing (baseline again)"]]
    base = {op: sum(b[op].cpu for b in bases) / 2 for op in bases[0]}
    base_wal = sum(written(b) for b in bases) / 2 if m.walinspect else 0

    def figures(costs) -> list[str]:
        cells = []
        total = 0.0
        for op, cost in costs.items():
            cells += [f"{cost.cpu:,.0f}", f"{cost.cpu - base[op]:+,.0f}"]
            total += cost.cpu
        cells += [f"{total:,.0f}", f"{total - sum(base.values()):+,.0f}"]
        if m.walinspect:
            wal = written(costs)
            cells += [f"{wal:,.0f}", f"{wal - base_wal:+,.0f}"]
        return cells

    header = ["piece removed", "enqueue µs", "Δ", "claim µs", "Δ"]
    header += ["complete µs", "Δ", "sum µs", "Δ"]
    if m.walinspect:
        header += ["WAL B w/o FPI", "Δ"]
    print_table(
        f"Server CPU per job without each piece, one at a time, {jobs:,} jobs "
        f"(median of {options.runs} runs; Δ: against the mean of the baselines)",
        header,
        [[label, *figures(costs)] for label, costs in results.items()],
    )
