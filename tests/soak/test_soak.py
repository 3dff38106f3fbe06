"""The soak, short: two minutes of chaos on real workers (see tests/soak/).

It must lose no job, leave none stuck, end every workflow as its graph
plans, and every duplicate completion must fall in the window that
guarantee 2 allows. It starts a PostgreSQL of its own
and needs no test database, so it runs once, where ``JOBS_SOAK=1`` (.ci/run
sets it for one explicit run), not in each database's pass of the suite.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MINUTES = 2

pytestmark = [
    pytest.mark.soak,
    pytest.mark.timeout(MINUTES * 60 + 600),
    pytest.mark.skipif(
        os.environ.get("JOBS_SOAK") != "1",
        reason="the soak takes minutes: run it with JOBS_SOAK=1 (CI does, once)",
    ),
]


def test_two_minutes_of_chaos_lose_nothing(tmp_path):
    command = [sys.executable, "-m", "tests.soak", "--minutes", str(MINUTES)]
    command += ["--run-dir", str(tmp_path)]
    result = subprocess.run(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        timeout=MINUTES * 60 + 540,
    )
    print(result.stdout)
    assert result.returncode == 0, (
        f"the soak failed (logs in {tmp_path}):\n" + (result.stdout[-30000:])
    )
