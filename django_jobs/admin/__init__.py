"""The admin is the console: jobs, the queue dashboard and the workers."""

from . import jobs, queues, workers  # noqa: F401
