from django.apps import AppConfig


class ThrottleConfig(AppConfig):
    name = "chave.throttle"
    label = "throttle"
