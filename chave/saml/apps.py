from django.apps import AppConfig


class SamlConfig(AppConfig):
    name = "chave.saml"
    label = "saml"
    verbose_name = "SAML 2.0 identity provider"

    def ready(self):
        # `chave migrate` (and so `make run`) leaves the IdP with a signing key and certificate.
        from django.db.models.signals import post_migrate

        from .keys import ensure_key_after_migrate

        post_migrate.connect(ensure_key_after_migrate, sender=self, dispatch_uid="chave.saml.keys.ensure_key")
