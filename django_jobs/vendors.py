"""The databases django-jobs runs on, and the one way it refuses the others.

The claim needs ``UPDATE ... RETURNING`` and, where several processes claim
at once, ``FOR UPDATE SKIP LOCKED``; its hot statements are written by hand
for each. Only PostgreSQL and SQLite have been built and tested.
"""

from __future__ import annotations

from django.db import NotSupportedError

SUPPORTED_VENDORS = ("postgresql", "sqlite")


def require_supported(vendor: str) -> None:
    """NotSupportedError, in one sentence, for any other database."""
    if vendor not in SUPPORTED_VENDORS:
        raise NotSupportedError(
            f"django_jobs supports PostgreSQL and SQLite, not {vendor}."
        )
