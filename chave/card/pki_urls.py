"""The test PKI's publication points, served by Chave itself (development and tests only)."""

from django.urls import path

from . import views

app_name = "pki"
urlpatterns = [
    path("crl", views.crl, name="crl"),
    path("ocsp", views.ocsp, name="ocsp"),
]
