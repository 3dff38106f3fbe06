from django.urls import path

from . import views

urlpatterns = [
    path("", views.signup, name="signup"),
    path("add/", views.enqueue_add, name="enqueue-add"),
    path("results/<str:result_id>/", views.result, name="result"),
]
