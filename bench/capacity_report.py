"""The tables bench/capacity.py prints of what it measured (see there and
capacity_measure.py)."""

from __future__ import annotations

import capacity_measure as m
from common import print_table

ENQUEUE = "enqueue, nobody to wake"
BULK = "bulk enqueue, per job (100 per statement)"
CLAIM = "claim one job"
CLAIM_10 = "claim 10 jobs per statement (per job)"
COMPLETE = "complete one job"
COMPLETE_10 = "complete 10 per statement (per job)"
MOVE = "move to the history, 1,000 per statement (per job)"
#: What the claim and the completion change (see queue.sql).
CHANGED = (
    "state", "attempts", "claim_token", "reserved_by", "reserved_until",
    "started_at", "last_attempted_at", "worker_ids", "finished_at",
    "return_value", "usage",
)  # fmt: skip


def cost_row(name: str, cost: m.Cost) -> list:
    own = "-" if cost.wal is None else f"{cost.wal:,.0f}"
    hot = f"{cost.hot / cost.updates:.0%}" if cost.updates else "-"
    return [
        name,
        f"{cost.cpu:,.0f}",
        f"{1e6 / cost.cpu:,.0f}" if cost.cpu else "-",
        f"{cost.statements:.2f}",
        own,
        f"{cost.wal_all:,.0f}",
        f"{cost.updates:.2f}",
        hot,
    ]


COST_HEADER = [
    "operation",
    "server CPU µs",
    "per core /s",
    "statements",
    "WAL B (own)",
    "WAL B (all)",
    "job updates",
    "HOT",
]


def print_costs(title: str, costs: dict[str, m.Cost], sums: dict) -> None:
    rows = [cost_row(name, cost) for name, cost in costs.items()]
    for name, parts in sums.items():
        if all(part in costs for part in parts):
            total = costs[parts[0]]
            for part in parts[1:]:
                total = total + costs[part]
            rows.append(cost_row(name, total))
    print_table(title, COST_HEADER, rows)


def print_plans() -> None:
    """How PostgreSQL planned the connection's prepared claims and
    completions: a generic plan once, or a custom plan at every execution."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement, generic_plans, custom_plans"
            " FROM pg_prepared_statements WHERE statement LIKE 'WITH %'"
        )
        found = cursor.fetchall()
    print(
        "\nPlans of the prepared claims and completions (since the connection's"
        " last ALTER or DROP, after which psycopg prepares them again):"
    )
    for statement, generic, custom in sorted(found):
        if statement.startswith("WITH candidates"):
            name = "claim"
        else:
            name = f"completion of {statement.count('), ($') + 1}"
        print(f"  {name}: {generic:,} generic, {custom:,} custom")


WAL_COLUMNS = {
    "enqueue": ENQUEUE,
    "bulk (100)": BULK,
    "claim": CLAIM,
    "claim (10)": CLAIM_10,
    "complete": COMPLETE,
    "complete (10)": COMPLETE_10,
}


def print_wal(costs: dict[str, m.Cost], columns: dict = WAL_COLUMNS) -> None:
    """Each operation's own WAL per job: the job table's heap records by
    type, every other relation's records together, the commit. ``columns``:
    label -> operation."""
    merged: dict[str, dict[tuple[str, str], list[float]]] = {}
    for label, name in columns.items():
        merged[label] = {}
        for (relation, kind), values in costs[name].records.items():
            if relation != m.TABLE:
                kind = kind.split()[0]  # Btree, Heap: index or table as a whole
            key = merged[label].setdefault((relation, kind), [0.0, 0.0, 0.0])
            for n, value in enumerate(values):
                key[n] += value
    keys = sorted(
        set().union(*merged.values()),
        key=lambda key: (key[0] == "-", not key[0].startswith(m.TABLE), key),
    )

    def cell(values) -> str:
        count, size, _ = values
        return f"{size:,.0f} ({count:.2f})" if count else ""

    rows = [
        [
            f"{relation} {kind}" if relation != "-" else f"no relation: {kind}",
            *(cell(merged[label].get((relation, kind), (0, 0, 0))) for label in merged),
        ]
        for relation, kind in keys
    ]
    for name, column in (("of which full-page images", 2), ("total", 1)):
        totals = (sum(v[column] for v in by.values()) for by in merged.values())
        rows.append([name, *(f"{total:,.0f}" for total in totals)])
    print_table(
        "The operations' own WAL per job, by relation and record: bytes (records)",
        ["relation, record", *merged],
        rows,
    )


def print_not_hot(rows: dict) -> None:
    """Why the claim and completion cannot be HOT; the rows' sizes."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s",
            [m.TABLE],
        )
        indexes = cursor.fetchall()
    print(
        "\nIndexes that read a column the claim or the completion changes "
        "(while one does, no update of a job is HOT):"
    )
    for column in CHANGED:
        readers = [
            name for name, text in indexes if f" {column}" in text.replace("(", " ")
        ]
        if readers:
            print(f"  {column}: {', '.join(sorted(readers))}")
    for state, (size, json, toast) in rows.items():
        print(
            f"A {state} job's row: {size:,.0f} bytes, of which JSON columns "
            f"{json:,.0f}; TOAST table: {toast:,} bytes."
        )
