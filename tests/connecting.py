"""A task module that queries the database when it is imported: a fork server
must not import it (its children would share the connection's socket)."""

from django.db import connection

from django_jobs.compat import task

with connection.cursor() as cursor:
    cursor.execute("SELECT 1")


@task
def ping() -> str:
    return "pong"
