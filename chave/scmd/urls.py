from django.urls import path

from . import views

app_name = "scmd"
urlpatterns = [
    path("SCMDService.svc", views.service, name="service"),
    path("encryption.crt", views.encryption_certificate, name="encryption_certificate"),
]
