from django.apps import AppConfig


class FederationConfig(AppConfig):
    name = "chave.federation"
    label = "federation"
    verbose_name = "Relying parties"
