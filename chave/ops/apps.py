from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "chave.ops"
    label = "ops"
