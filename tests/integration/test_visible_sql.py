"""Every statement django-jobs runs is one Django sees, on both databases."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_jobs import queue
from tests import tasks


def test_enqueue_is_one_query(db, django_assert_num_queries):
    with django_assert_num_queries(1):
        tasks.add.enqueue(1, 2)


def test_execute_wrapper_sees_enqueue_claim_and_complete(db):
    seen = []

    def spy(execute, sql, params, many, context):
        seen.append(sql.split()[0] if sql.strip() else sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        result = tasks.add.enqueue(1, 2)
        (job,) = queue.claim(worker_id="w1", limit=1, prepare=True)
        queue.complete(job.pk, token=job.claim_token, return_value=3)
    assert seen[0] == "INSERT"
    if connection.vendor == "mysql":  # no UPDATE ... RETURNING: lock, update
        assert seen.count("UPDATE") >= 2  # the claim, then the completion
    else:
        assert seen.count("WITH") == 2  # the claim, then the completion
    assert int(result.id) == job.pk


def test_connection_queries_logs_them(db):
    with CaptureQueriesContext(connection) as queries:
        tasks.add.enqueue(1, 2)
    assert len(queries) == 1
    assert "INSERT INTO" in queries[0]["sql"]
