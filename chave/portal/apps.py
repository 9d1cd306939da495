from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "chave.portal"
    label = "portal"
    verbose_name = "Personal area"

    def ready(self):
        # Every sign-in and sign-out of a key is recorded, so that cancelling the key (or reporting
        # a use that was not the owner's) can end all its browser sessions.
        from chave.login.signals import signed_in, signed_out
        from chave.receivers import connect

        connect(signed_in, "chave.portal.services.record_session", dispatch_uid="chave.portal.services.record_session")
        connect(signed_out, "chave.portal.services.forget_session", dispatch_uid="chave.portal.services.forget_session")
