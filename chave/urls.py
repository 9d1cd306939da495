from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from chave.oidc import views as oidc_views
from chave.signing import views as signing_views

# A database gone away (PostgreSQL restarting) answers 503 with Retry-After, not 500: chave/ops/errors.py.
handler500 = "chave.ops.errors.server_error"

urlpatterns = [
    path("i18n/", include("django.conf.urls.i18n")),
    # Browsers ask for /favicon.ico whatever the page says: the same icon, not a 404 per visit.
    path("favicon.ico", RedirectView.as_view(url=static("chave/favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("login/", include("chave.login.urls")),
    path(".well-known/openid-configuration", oidc_views.discovery, name="openid-configuration"),
    path(".well-known/oauth-authorization-server", oidc_views.authorization_server_metadata,
         name="oauth-authorization-server"),
    path("oidc/", include("chave.oidc.urls")),
    path("saml/", include("chave.saml.urls")),
    path("pki/signing/", include("chave.signing.pki_urls")),
    path("csc/v2/", include("chave.signing.csc_urls")),
    path("scmd/", include("chave.scmd.urls")),
    path("api/signing/", include("chave.signing.api_urls")),
    path("area/sign/", include("chave.signing.urls")),
    path("validate/", signing_views.validate_page, name="validate"),
    path("app/api/", include("chave.app.api_urls")),
    path("app/", include("chave.app.urls")),
    path("area/app/", include("chave.app.area_urls")),
    path("area/", include("chave.portal.urls")),
    path("card/", include("chave.card.urls")),
    path("counter/citizen/<int:pk>/app/", include("chave.app.counter_urls")),
    path("counter/", include("chave.counter.urls")),
    path("pki/card/", include("chave.card.pki_urls")),
    path("health/", include("chave.ops.urls")),
    path("", include("chave.public.urls")),
]
