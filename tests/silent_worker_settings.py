"""The test settings with the default WORKER_TIMEOUT (60 s): a SIGKILLed
worker's row stays for the whole test, as it does in production for a
minute, while the live workers' heartbeats (every 0.5 s) take its room."""

import copy

from tests.settings import *  # noqa: F403
from tests.settings import TASKS

TASKS = copy.deepcopy(TASKS)
TASKS["default"]["OPTIONS"]["WORKER_TIMEOUT"] = 60
