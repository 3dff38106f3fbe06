"""URLs a project includes for monitoring: the metrics endpoint.

    path("jobs/", include("django_jobs.urls")),  # /jobs/metrics

Nothing here is needed for the console (the admin has its own URLs).
"""

from django.urls import path

from . import views

app_name = "django_jobs"

urlpatterns = [
    path("metrics", views.metrics, name="metrics"),
]
