from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "chave.delivery"
    label = "delivery"

    def ready(self):
        from . import doorbell  # noqa: F401 - rings the worker when a task is queued
