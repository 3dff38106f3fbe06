"""The admin is the console: jobs, the queue dashboard, workers, schedules,
batches."""

from . import batches, jobs, queues, schedules, workers  # noqa: F401
