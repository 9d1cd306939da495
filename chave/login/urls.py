from django.urls import path

from . import views

app_name = "login"
urlpatterns = [
    path("", views.start, name="start"),
    path("channel/", views.channel, name="channel"),
    path("code/", views.code, name="code"),
    path("code/resend/", views.resend, name="resend"),
    path("approve/", views.approve, name="approve"),
    path("app/", views.app_sign_in, name="app"),
    path("new-pin/", views.change_pin, name="change_pin"),
    path("done/", views.done, name="done"),
    path("logout/", views.logout, name="logout"),
]
