from django.urls import path

from chave.oidc import converters  # noqa: F401 - registers <client_id:…>

from . import views

app_name = "portal"
urlpatterns = [
    path("", views.home, name="home"),
    path("enter/", views.enter, name="enter"),
    path("enter/key/", views.enter_key, name="enter_key"),
    path("pin/", views.pin, name="pin"),
    path("pin/confirm/", views.pin_confirm, name="pin_confirm"),
    path("code/resend/", views.resend, name="resend"),
    path("contact/confirm/", views.contact_confirm, name="contact_confirm"),
    path("contact/<str:kind>/", views.contact, name="contact"),
    path("cancel/", views.cancel, name="cancel"),
    path("history/", views.history, name="history"),
    path("history/<int:event_id>/not-me/", views.not_me, name="not_me"),
    path("portals/", views.portals, name="portals"),
    path("portals/<client_id:client_id>/revoke/", views.revoke, name="revoke"),
    path("export/", views.export, name="export"),
]
