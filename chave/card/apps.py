from django.apps import AppConfig


class CardConfig(AppConfig):
    name = "chave.card"
    label = "card"
