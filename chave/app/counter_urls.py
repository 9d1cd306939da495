from django.urls import path

from . import counter_views

app_name = "app_counter"
urlpatterns = [
    path("", counter_views.devices, name="devices"),
]
