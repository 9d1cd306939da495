from django.apps import AppConfig


class ChaveAppConfig(AppConfig):
    name = "chave.app"
    label = "app"
    verbose_name = "The Chave app"

    def ready(self):
        # A key's devices go with it: cancelled or blocked key, or a new mobile number (the pairing
        # was confirmed by a code to the old one).
        from chave.identity.signals import contact_changed, key_blocked, key_cancelled
        from chave.receivers import connect

        connect(key_cancelled, "chave.app.services.on_key_cancelled", dispatch_uid="app.key_cancelled")
        connect(key_blocked, "chave.app.services.on_key_blocked", dispatch_uid="app.key_blocked")
        connect(contact_changed, "chave.app.services.on_contact_changed", dispatch_uid="app.contact_changed")
