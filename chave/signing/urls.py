from django.urls import path

from . import views

app_name = "signing"
urlpatterns = [
    path("", views.home, name="home"),
    path("activate/", views.activate, name="activate"),
    path("pin/", views.change_pin, name="change_pin"),
    path("deactivate/", views.deactivate, name="deactivate"),
    path("upload/", views.upload, name="upload"),
    path("place/", views.place, name="place"),
    path("page/<int:index>/<int:page>.png", views.page_image, name="page_image"),
    path("page/<int:index>/<int:page>/view.png", views.page_image, {"kind": "view"}, name="page_view"),
    path("code/", views.code, name="code"),
    path("code/resend/", views.resend, name="resend"),
    path("done/", views.done, name="done"),
    path("download/<int:index>/", views.download, name="download"),
]
