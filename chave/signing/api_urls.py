from django.urls import path

from . import cmd_views, views
from .api import openapi_document

app_name = "signing_api"
urlpatterns = [
    path("cmd/certificate", cmd_views.certificate, name="cmd_certificate"),
    path("cmd/sign", cmd_views.sign, name="cmd_sign"),
    path("cmd/resend", cmd_views.resend, name="cmd_resend"),
    path("cmd/validate", cmd_views.validate, name="cmd_validate"),
    path("validate", views.validate_api, name="validate"),
    path("openapi.json", openapi_document("signing.json"), name="openapi"),
]
