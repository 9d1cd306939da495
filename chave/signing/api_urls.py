from django.urls import path

from . import views
from .api import openapi_document

app_name = "signing_api"
urlpatterns = [
    path("validate", views.validate_api, name="validate"),
    path("openapi.json", openapi_document("signing.json"), name="openapi"),
]
