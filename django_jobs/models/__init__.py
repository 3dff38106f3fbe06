"""The tables of django_jobs: jobs (jobs.py), the fleet (fleet.py), and the
groups jobs belong to (groups.py).

A job's state changes only through ``django_jobs.queue``; the models hold no
behaviour beyond read-only conveniences.
"""

from .fleet import Lease, Queue, Schedule, Worker
from .groups import WORKFLOW_NAME_MAX, Batch, Dependency, Workflow
from .jobs import Job, JobQuerySet
from .keys import QueueKey

__all__ = [
    "WORKFLOW_NAME_MAX",
    "Batch",
    "Dependency",
    "Job",
    "JobQuerySet",
    "Lease",
    "Queue",
    "QueueKey",
    "Schedule",
    "Worker",
    "Workflow",
]
