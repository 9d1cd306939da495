from django.apps import AppConfig


class IdentityConfig(AppConfig):
    name = "chave.identity"
    label = "identity"

    def ready(self):
        from .pins import share_argon2_memory

        share_argon2_memory()  # before any server thread allocates
