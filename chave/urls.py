from django.contrib import admin
from django.urls import include, path

from chave.oidc import views as oidc_views

urlpatterns = [
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("login/", include("chave.login.urls")),
    path(".well-known/openid-configuration", oidc_views.discovery, name="openid-configuration"),
    path("oidc/", include("chave.oidc.urls")),
    path("", include("chave.public.urls")),
]
