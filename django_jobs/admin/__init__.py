"""The admin is the console: jobs, the queue dashboard, workers, schedules,
batches, workflows."""

from . import batches, jobs, queues, schedules, workers, workflows  # noqa: F401
