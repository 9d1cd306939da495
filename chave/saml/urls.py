from django.urls import path

from . import views

app_name = "saml"
urlpatterns = [
    path("metadata", views.metadata, name="metadata"),
    path("sso", views.sso, name="sso"),
    path("continue", views.continue_request, name="resume"),
    path("continue/<str:reference>", views.continue_request, name="continue"),
    path("consent", views.consent, name="consent"),
    path("cancel", views.cancel, name="cancel"),
    path("slo", views.slo, name="slo"),
    path("slo/continue/<str:logout_reference>", views.continue_logout, name="slo_continue"),
]
