from django.urls import path

from . import views

app_name = "oidc"
urlpatterns = [
    path("authorize", views.authorize, name="authorize"),
    path("consent", views.consent, name="consent"),
    path("token", views.token, name="token"),
    path("userinfo", views.userinfo, name="userinfo"),
    path("jwks", views.jwks, name="jwks"),
]
