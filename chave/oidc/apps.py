from django.apps import AppConfig


class OidcConfig(AppConfig):
    name = "chave.oidc"
    label = "oidc"
    verbose_name = "OpenID Connect provider"
