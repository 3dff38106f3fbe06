"""The test settings with the default RETRY_BACKOFF (10 s) and an IMPORT_GRACE
of 12 s: long enough to see the grace's own backoff (1, 2, 4 s), which must
not follow RETRY_BACKOFF."""

from tests.settings import *  # noqa: F403
from tests.settings import TASKS

_default = TASKS["default"]
TASKS = {
    **TASKS,
    "default": {
        **_default,
        "OPTIONS": {**_default["OPTIONS"], "RETRY_BACKOFF": 10, "IMPORT_GRACE": 12},
    },
}
