from django.contrib import admin
from django.urls import include, path

from chave.oidc import views as oidc_views
from chave.signing import views as signing_views

urlpatterns = [
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("login/", include("chave.login.urls")),
    path(".well-known/openid-configuration", oidc_views.discovery, name="openid-configuration"),
    path(".well-known/oauth-authorization-server", oidc_views.authorization_server_metadata,
         name="oauth-authorization-server"),
    path("oidc/", include("chave.oidc.urls")),
    path("pki/signing/", include("chave.signing.pki_urls")),
    path("csc/v2/", include("chave.signing.csc_urls")),
    path("api/signing/", include("chave.signing.api_urls")),
    path("area/sign/", include("chave.signing.urls")),
    path("validate/", signing_views.validate_page, name="validate"),
    path("area/", include("chave.portal.urls")),
    path("card/", include("chave.card.urls")),
    path("counter/", include("chave.counter.urls")),
    path("pki/card/", include("chave.card.pki_urls")),
    path("health/", include("chave.ops.urls")),
    path("", include("chave.public.urls")),
]
