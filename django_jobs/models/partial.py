"""The model checks' warnings about partial indexes on MariaDB and MySQL.

Django warns (models.W036, models.W037) that these servers have no indexes
or unique constraints with a condition, and creates the indexes without it.
Migration 0020_mysql builds what each one does there instead (state-first
indexes; unique indexes on a virtual column and on the schedule's tick), so
the warnings would only alarm a project on every ``check`` and worker start.
"""

from __future__ import annotations

from django.core.checks import CheckMessage

#: Django's warnings that 0020_mysql answers.
ANSWERED = frozenset({"models.W036", "models.W037"})


def answered_by_migration(messages: list[CheckMessage]) -> list[CheckMessage]:
    """``messages`` without the warnings migration 0020_mysql answers."""
    return [message for message in messages if message.id not in ANSWERED]
