"""Views a project can add to its URLs (see ``django_jobs.urls``): the metrics.

The metrics say how much work waits and fails, which is not for everyone:
a scraper shows a token (``Authorization: Bearer <JOBS_METRICS_TOKEN>``), a
person a staff session with the console's view permission.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

#: Either permission lets a staff user see the dashboard, so the metrics too.
PERMISSIONS = ("django_jobs.view_job", "django_jobs.view_queue")


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """The queues in Prometheus or OpenMetrics text, as the Accept header asks."""
    if not (has_token(request) or is_viewer(request)):
        return refusal()
    from .metrics import exposition

    body, content_type = exposition(request.headers.get("Accept", ""))
    return HttpResponse(body, content_type=content_type)


def token() -> str:
    return getattr(settings, "JOBS_METRICS_TOKEN", None) or ""


def has_token(request: HttpRequest) -> bool:
    expected = token()
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if not expected or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), expected.encode())


def is_viewer(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    if user is None or not (user.is_active and user.is_staff):
        return False
    return any(user.has_perm(permission) for permission in PERMISSIONS)


def refusal() -> HttpResponse:
    """401 with a Bearer challenge when a token would do, else 403."""
    if token():
        response = HttpResponse("A bearer token is needed.\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="django-jobs metrics"'
        return response
    return HttpResponse("Staff with the view_job permission only.\n", status=403)
