"""The admin is the console: jobs, the queue dashboard, workers, schedules."""

from . import jobs, queues, schedules, workers  # noqa: F401
