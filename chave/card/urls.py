from django.urls import path

from . import views

app_name = "card"
urlpatterns = [
    path("", views.start, name="login"),
    path("return", views.card_return, name="return"),
    path("done/", views.done, name="done"),
    path("register/", views.register, name="register"),
    path("register/confirm/", views.register_confirm, name="register_confirm"),
    path("register/resend/", views.register_resend, name="register_resend"),
    path("register/pin/", views.register_pin, name="register_pin"),
    path("register/done/", views.register_done, name="register_done"),
    path("recover/", views.recover, name="recover"),
    path("recover/pin/", views.recover_pin, name="recover_pin"),
    path("recover/done/", views.recover_done, name="recover_done"),
]
