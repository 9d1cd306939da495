from django.urls import path

from . import csc_views
from .api import openapi_document

app_name = "csc"
urlpatterns = [
    path("info", csc_views.info, name="info"),
    path("credentials/list", csc_views.credentials_list, name="credentials_list"),
    path("credentials/info", csc_views.credentials_info, name="credentials_info"),
    path("credentials/sendOTP", csc_views.send_otp, name="send_otp"),
    path("credentials/authorize", csc_views.authorize, name="authorize"),
    path("signatures/signHash", csc_views.sign_hash, name="sign_hash"),
    path("openapi.json", openapi_document("csc.json"), name="openapi"),
]
