"""A console page that only shows rows the worker and the queue own."""

from __future__ import annotations

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """No add, change or delete, whatever the user's permissions.

    Workers and batches are written by the worker and ``django_jobs.queue``;
    a hand edit would contradict what those believe, so the console only
    shows them.
    """

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
