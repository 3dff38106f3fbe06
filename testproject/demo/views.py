"""Two views: one enqueues a job directly, one shows a job's result."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from django_jobs.compat import TaskResultDoesNotExist

from .models import Signup
from .tasks import add


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    """Create a signup; its post_save handler enqueues the welcome email."""
    if request.method == "POST":
        email = request.POST.get("email", "").strip()
        if email:
            Signup.objects.create(email=email)
            return redirect("signup")
    return render(
        request, "demo/signup.html", {"signups": Signup.objects.order_by("-pk")[:20]}
    )


@require_http_methods(["POST"])
def enqueue_add(request: HttpRequest) -> JsonResponse:
    """Enqueue a job straight from a view and hand back its result id."""
    try:
        a, b = int(request.POST["a"]), int(request.POST["b"])
    except (KeyError, ValueError):
        return JsonResponse({"error": "a and b must be integers"}, status=400)
    result = add.enqueue(a, b)
    return JsonResponse({"id": result.id, "status": result.status}, status=202)


def result(request: HttpRequest, result_id: str) -> JsonResponse:
    try:
        task_result = add.get_backend().get_result(result_id)
    except TaskResultDoesNotExist:
        return JsonResponse({"error": "no such job"}, status=404)
    body = {"id": task_result.id, "status": task_result.status}
    if task_result.is_finished and not task_result.errors:
        body["return_value"] = task_result.return_value
    return JsonResponse(body)
