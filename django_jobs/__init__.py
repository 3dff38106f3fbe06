"""django-jobs: a database-backed job queue for Django's Tasks framework."""

__version__ = "0.1.0.dev0"
