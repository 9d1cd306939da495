from django.apps import AppConfig


class LoginConfig(AppConfig):
    name = "chave.login"
    label = "login"
