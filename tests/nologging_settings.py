"""The test settings without a LOGGING block, as in a new project."""

from tests.settings import *  # noqa: F403

del LOGGING  # noqa: F821  (a new project has none)
