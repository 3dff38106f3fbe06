# ruff: noqa: PT009, PT027  (this module shows the unittest style on purpose)
"""django_jobs.testing in Django's own TestCase and TransactionTestCase.

The style of the "Testing your tasks" page: enqueues made on commit are
captured with captureOnCommitCallbacks, then run with run_jobs() or at once
with run_on_enqueue().
"""

from functools import partial

from django.db import DatabaseError, transaction
from django.test import TestCase, TransactionTestCase

from django_jobs.compat import TaskResultStatus
from django_jobs.models import Job
from django_jobs.testing import run_jobs, run_on_enqueue
from tests import helper_tasks as t
from tests import tasks
from tests.models import Record


class RunJobsInATestCase(TestCase):
    def test_a_job_enqueued_on_commit_runs(self):
        with self.captureOnCommitCallbacks(execute=True):
            transaction.on_commit(partial(t.urgent.enqueue, "on commit"))
        (result,) = run_jobs()
        self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)
        self.assertEqual(result.return_value, "on commit")
        self.assertTrue(Record.objects.filter(key="urgent:on commit").exists())

    def test_eager_runs_the_on_commit_enqueue(self):
        with run_on_enqueue(), self.captureOnCommitCallbacks(execute=True):
            transaction.on_commit(partial(tasks.add.enqueue, 1, 2))
        job = Job.objects.get()
        self.assertEqual((job.state, job.return_value), ("done", 3))

    def test_a_failure_is_raised_and_recorded(self):
        result = t.send_email.enqueue("not-an-address")
        with self.assertRaisesMessage(ValueError, "not an address"):
            run_jobs()
        result.refresh()
        self.assertEqual(result.status, TaskResultStatus.READY)
        self.assertEqual(result.errors[0].exception_class, ValueError)

    def test_the_test_goes_on_after_a_database_error_in_a_job(self):
        t.broken_sql.enqueue()
        with self.assertRaises(DatabaseError):
            run_jobs()
        Record.objects.create(key="after")  # the transaction still works
        self.assertEqual(Job.objects.get().attempts, 1)

    def test_checkpoints_of_a_failed_attempt_are_kept(self):
        t.step_through.enqueue(3, fail_at=3)
        with self.assertRaises(RuntimeError):
            run_jobs()
        self.assertEqual(Job.objects.get().checkpoint, {"next": 3})
        (result,) = run_jobs()
        self.assertEqual(result.return_value["start"], 3)


class RunJobsInATransactionTestCase(TransactionTestCase):
    def test_jobs_and_their_children_run_in_autocommit(self):
        t.fan_out.enqueue(2)
        self.assertEqual(len(run_jobs()), 3)
        self.assertEqual(Job.objects.filter(state="done").count(), 3)
