from django.apps import AppConfig


class CodesConfig(AppConfig):
    name = "chave.codes"
    label = "codes"
