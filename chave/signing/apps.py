from django.apps import AppConfig


class SigningConfig(AppConfig):
    name = "chave.signing"
    label = "signing"
    verbose_name = "Remote signing"

    def ready(self):
        # Connected by name: importing the services would load pyHanko in every process (chave/receivers.py).
        from chave.identity.signals import contact_changed, key_cancelled, key_renewed
        from chave.receivers import connect

        connect(key_cancelled, "chave.signing.services.on_key_cancelled", dispatch_uid="signing.key_cancelled")
        connect(contact_changed, "chave.signing.services.on_contact_changed", dispatch_uid="signing.contact_changed")
        connect(key_renewed, "chave.signing.services.on_key_renewed", dispatch_uid="signing.key_renewed")
