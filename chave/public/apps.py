from django.apps import AppConfig


class PublicConfig(AppConfig):
    name = "chave.public"
    label = "public"
