from django.apps import AppConfig


class SigningConfig(AppConfig):
    name = "chave.signing"
    label = "signing"
    verbose_name = "Remote signing"

    def ready(self):
        from chave.identity.signals import contact_changed, key_cancelled, key_renewed

        from . import services

        key_cancelled.connect(services.on_key_cancelled, dispatch_uid="signing.key_cancelled")
        contact_changed.connect(services.on_contact_changed, dispatch_uid="signing.contact_changed")
        key_renewed.connect(services.on_key_renewed, dispatch_uid="signing.key_renewed")
