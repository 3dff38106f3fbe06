"""Who may look at the console's pages that are not a table of their own."""

from __future__ import annotations

from django.contrib.auth import get_permission_codename

from ..models import Job


class ViewedWithJobs:
    """A page that whoever may view jobs may view too (the dashboard, the
    workflows): a viewer given ``view_job`` alone sees the whole console."""

    def has_view_permission(self, request, obj=None) -> bool:
        codename = get_permission_codename("view", Job._meta)
        return super().has_view_permission(request, obj) or request.user.has_perm(
            f"{Job._meta.app_label}.{codename}"
        )
