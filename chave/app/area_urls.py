from django.urls import path

from . import area_views

app_name = "app_area"
urlpatterns = [
    path("", area_views.devices, name="devices"),
    path("add/", area_views.add, name="add"),
    path("<uuid:device_id>/rename/", area_views.rename, name="rename"),
    path("<uuid:device_id>/remove/", area_views.remove, name="remove"),
]
