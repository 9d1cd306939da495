from django.urls import path

from . import logout, views

app_name = "oidc"
urlpatterns = [
    path("authorize", views.authorize, name="authorize"),
    path("consent", views.consent, name="consent"),
    path("cancel", views.cancel, name="cancel"),
    path("token", views.token, name="token"),
    path("userinfo", views.userinfo, name="userinfo"),
    path("jwks", views.jwks, name="jwks"),
    path("revoke", views.revoke, name="revoke"),
    path("introspect", views.introspect, name="introspect"),
    path("par", views.pushed_authorization_request, name="par"),
    path("logout", logout.end_session, name="end_session"),
    path("logout/confirm", logout.confirm_end_session, name="end_session_confirm"),
]
