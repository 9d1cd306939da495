from django.urls import path, re_path

from . import pki_views

app_name = "signing_pki"
urlpatterns = [
    path("root.crt", pki_views.certificate, {"name": "root"}, name="root_crt"),
    path("ca.crt", pki_views.certificate, {"name": "ca"}, name="ca_crt"),
    path("ocsp.crt", pki_views.certificate, {"name": "ocsp"}, name="ocsp_crt"),
    path("tsa.crt", pki_views.certificate, {"name": "tsa"}, name="tsa_crt"),
    path("ca.crl", pki_views.ca_crl, name="ca_crl"),
    path("root.crl", pki_views.root_crl, name="root_crl"),
    path("ocsp", pki_views.ocsp, name="ocsp"),
    re_path(r"^ocsp/(?P<encoded>[A-Za-z0-9+/=%]+)$", pki_views.ocsp, name="ocsp_get"),
    path("tsa", pki_views.tsa, name="tsa"),
]
