"""The test project's URLs plus the metrics endpoint, at /jobs/metrics."""

from django.urls import include, path

from testproject.urls import urlpatterns as project

urlpatterns = [*project, path("jobs/", include("django_jobs.urls"))]
