"""Workers with the jobs' database behind PgBouncer (transaction pooling).

Enqueues and the children's ORM work go through the pooler; the supervisor
works on a direct connection (``WORKER_DATABASE``), as LISTEN and prepared
statements need a session of their own.
"""

import os
import shutil

import pytest
from django.db import connection

from django_jobs.models import Job
from tests import tasks
from tests.acceptance.bouncer import BINARY, Bouncer
from tests.acceptance.conftest import database_url
from tests.models import Record

pytestmark = pytest.mark.postgres


@pytest.fixture
def bouncer(transactional_db):
    if not shutil.which(BINARY) and not os.path.exists(BINARY):
        if os.environ.get("JOBS_REQUIRE_PGBOUNCER"):
            pytest.fail("pgbouncer is not installed (apt-get install pgbouncer)")
        pytest.skip("pgbouncer is not installed")
    settings = connection.settings_dict
    started = Bouncer(
        settings.get("HOST") or "127.0.0.1",
        int(settings.get("PORT") or 5432),
        settings.get("USER") or "postgres",
    )
    yield started
    started.stop()


def test_orm_jobs_and_their_enqueues_go_through_pgbouncer(start_worker, bouncer):
    name = connection.settings_dict["NAME"]
    records = [tasks.record.enqueue(f"pooled{i}") for i in range(6)]
    parent = tasks.spawn_children.enqueue(3)  # a job that enqueues jobs
    worker = start_worker(
        "--burst",
        "--concurrency",
        "2",
        DJANGO_SETTINGS_MODULE="tests.bouncer_settings",
        BOUNCER_URL=bouncer.url(name),
        DIRECT_URL=database_url(),
    )
    assert worker.wait(timeout=60) == 0, f"{worker.output}\n{bouncer.log()}"
    ids = [int(r.id) for r in records] + [int(parent.id)]
    assert Job.objects.filter(pk__in=ids, state="done").count() == 7
    assert Record.objects.filter(key__startswith="pooled").count() == 6
    children = Job.objects.filter(parent_id=parent.id)
    assert children.count() == 3  # enqueued through the pooler...
    assert set(children.values_list("state", flat=True)) == {"done"}  # ...and run
    assert bouncer.transactions(name) >= 10  # the jobs' ORM work went through it
    assert "cannot LISTEN" not in worker.output
