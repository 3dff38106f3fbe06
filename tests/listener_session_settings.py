"""The test settings with heartbeats 15 s apart (WORKER_TIMEOUT 60 s): for
15 s at least after a worker is killed, the live workers' heartbeats cannot
take its room (that needs it silent for two heartbeats); only the end of its
LISTEN session keeps wake-ups from it."""

import copy

from tests.settings import *  # noqa: F403
from tests.settings import TASKS

TASKS = copy.deepcopy(TASKS)
TASKS["default"]["OPTIONS"]["HEARTBEAT_INTERVAL"] = 15
TASKS["default"]["OPTIONS"]["WORKER_TIMEOUT"] = 60
