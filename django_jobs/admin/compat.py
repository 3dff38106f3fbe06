"""Actions on the job's page, on Django 5.2 as on 6.1.

Django 6.1's admin runs actions from an object's page (``@admin.action(
location=...)``, ``ActionLocation``); 5.2's admin only has them on the
list. On 5.2 the job page offers the same actions through ``PageActions``:
the same form, posted under the same field name, handed to the same
``response_action``, so that the actions, their confirmation pages and the
permission checks are one code path on both versions.
"""

from __future__ import annotations

import enum

from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import BadRequest, PermissionDenied
from django.db.models import BLANK_CHOICE_DASH
from django.http import HttpResponseRedirect

#: Django 6.1 and later run actions from an object's page themselves.
BUILT_IN = hasattr(admin, "ActionLocation")


class _Location(enum.Enum):
    """Django 6.1's ``ActionLocation``, for 5.2: the same names and values."""

    CHANGE_LIST = "CHANGE_LIST"
    CHANGE_FORM = "CHANGE_FORM"


Location = admin.ActionLocation if BUILT_IN else _Location
EVERYWHERE = [Location.CHANGE_LIST, Location.CHANGE_FORM]
#: The field a job page's action form posts (Django prefixes it so).
CHANGE_FORM_ACTION = f"{Location.CHANGE_FORM.value}-action"


def action(**kwargs):
    """``admin.action``; on 5.2 without ``location`` (every action is on both)."""
    if not BUILT_IN:
        kwargs.pop("location", None)
    return admin.action(**kwargs)


class PageActions:
    """The action form of an object's page where Django does not provide one
    (5.2), and the refusal of an action the user may not run (both)."""

    def get_actions(self, request, action_location=Location.CHANGE_LIST):
        if BUILT_IN:
            return super().get_actions(request, action_location=action_location)
        return super().get_actions(request)

    def refuse_unpermitted_action(self, request, field: str, location) -> None:
        """An action the user may not run is refused outright, not ignored."""
        if request.method != "POST":
            return
        names = [name for name in request.POST.getlist(field) if name]
        allowed = self.get_actions(request, action_location=location)
        if any(name not in allowed for name in names):
            raise PermissionDenied

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if BUILT_IN:
            return super().change_view(request, object_id, form_url, extra_context)
        if request.method == "POST" and CHANGE_FORM_ACTION in request.POST:
            return self._page_action(request, unquote(object_id))
        choices = self.get_action_choices(request, default_choices=[])
        if choices:  # none for a user who may only view
            form = self.action_form(auto_id=None, prefix=Location.CHANGE_FORM.value)
            form.fields["action"].choices = BLANK_CHOICE_DASH + choices
            extra_context = {
                "page_action_form": form,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                **(extra_context or {}),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def _page_action(self, request, object_id: str):
        """Run the posted action on this one job, as Django 6.1 would."""
        if request.POST.getlist(helpers.ACTION_CHECKBOX_NAME) != [object_id]:
            raise BadRequest("an action on a job's page applies to that job")
        data = request.POST.copy()
        data.setlist("action", [request.POST[CHANGE_FORM_ACTION]])
        data.pop("index", None)  # the one action posted is the first
        # Never "all matching jobs": on a page, an action applies to its job.
        data.pop("select_across", None)
        request.POST = data
        response = self.response_action(request, self.get_queryset(request))
        return response or HttpResponseRedirect(request.get_full_path())
