from django.urls import path

from . import views

app_name = "ops"

urlpatterns = [
    path("live", views.live, name="live"),
    path("ready", views.ready, name="ready"),
    path("metrics", views.prometheus, name="metrics"),
]
