from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "chave.delivery"
    label = "delivery"
