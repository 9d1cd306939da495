from django.apps import AppConfig


class IdentityConfig(AppConfig):
    name = "chave.identity"
    label = "identity"
