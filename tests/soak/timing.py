"""The backend OPTIONS of a soak's workers, apart from Django's settings.

Short intervals, so that a dead worker is noticed, its jobs are rescued and
leases run out within seconds: a soak of two minutes must settle quickly.
The chaos loop and the report read them too (the duplicate window depends on
WORKER_TIMEOUT and the ttr), without importing the settings module, which
must not be imported before the driver has chosen the database.
"""

from .kinds import KEY_CONCURRENCY, KEYED_QUEUE, LANE_CONCURRENCY, LANE_QUEUE

OPTIONS = {
    "DEFAULT_TTR": 5,
    "RETRY_BACKOFF": 0,
    "RETRY_BACKOFF_MAX": 0,
    "HEARTBEAT_INTERVAL": 0.5,
    "WORKER_TIMEOUT": 4,
    "RESCUE_INTERVAL": 0.5,
    "KILL_GRACE": 1,
    "SCHEDULE_INTERVAL": 60,
    "DONE_RETENTION": None,
    "BURIED_RETENTION": None,
    "PRUNE_INTERVAL": 3600,
    "QUEUE_LIMITS": {KEYED_QUEUE: {"key_concurrency": KEY_CONCURRENCY}},
    "ASYNC_QUEUES": {LANE_QUEUE: LANE_CONCURRENCY},
}
