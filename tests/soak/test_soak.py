"""The soak, short: minutes of chaos on real workers (see tests/soak/).

It must lose no job, leave none stuck, end every workflow as its graph
plans, and every duplicate completion must fall in the window that
guarantee 2 allows. It starts a database of its own (PostgreSQL, or MariaDB
for the MariaDB variant) and needs no test database, so it runs once, where
``JOBS_SOAK=1`` (.ci/run sets it for one explicit run), not in each
database's pass of the suite. ``JOBS_SOAK_DATABASE`` picks the variant:
``postgresql`` (the default), ``mariadb``, or ``all``; so that CI runs each
as its own line.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MINUTES = 2
#: The MariaDB variant's chaos: shorter, it proves the MariaDB paths (the
#: server crashed or shut down and started again mid-run, connections
#: killed, workers killed) once the PostgreSQL soak has proved the rest.
MARIADB_MINUTES = 1.5
MARIADB_JOBS = 2000
DATABASE = os.environ.get("JOBS_SOAK_DATABASE", "postgresql")

pytestmark = [
    pytest.mark.soak,
    pytest.mark.skipif(
        os.environ.get("JOBS_SOAK") != "1",
        reason="the soak takes minutes: run it with JOBS_SOAK=1 (CI does, once)",
    ),
]


def soak(tmp_path: Path, minutes: float, *options: str) -> None:
    command = [sys.executable, "-m", "tests.soak", "--minutes", str(minutes)]
    command += ["--run-dir", str(tmp_path), *options]
    result = subprocess.run(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        timeout=minutes * 60 + 540,
    )
    print(result.stdout)
    assert result.returncode == 0, (
        f"the soak failed (logs in {tmp_path}):\n" + (result.stdout[-30000:])
    )


@pytest.mark.timeout(MINUTES * 60 + 600)
@pytest.mark.skipif(
    DATABASE not in ("postgresql", "all"),
    reason=f"JOBS_SOAK_DATABASE={DATABASE}: the PostgreSQL soak is not selected",
)
def test_two_minutes_of_chaos_lose_nothing(tmp_path):
    soak(tmp_path, MINUTES)


@pytest.mark.timeout(MARIADB_MINUTES * 60 + 600)
@pytest.mark.skipif(
    DATABASE not in ("mariadb", "all"),
    reason="the MariaDB soak runs with JOBS_SOAK_DATABASE=mariadb (or all)",
)
def test_chaos_on_mariadb_loses_nothing(tmp_path):
    soak(
        tmp_path,
        MARIADB_MINUTES,
        "--database",
        "mariadb",
        "--jobs",
        str(MARIADB_JOBS),
    )
