from django.apps import AppConfig


class ChaveAppConfig(AppConfig):
    name = "chave.app"
    label = "app"
    verbose_name = "The Chave app"

    def ready(self):
        # A key's devices go with it: cancelled or blocked key, or a new mobile number (the pairing
        # was confirmed by a code to the old one).
        from chave.identity.signals import contact_changed, key_blocked, key_cancelled

        from . import services

        key_cancelled.connect(services.on_key_cancelled, dispatch_uid="app.key_cancelled")
        key_blocked.connect(services.on_key_blocked, dispatch_uid="app.key_blocked")
        contact_changed.connect(services.on_contact_changed, dispatch_uid="app.contact_changed")
