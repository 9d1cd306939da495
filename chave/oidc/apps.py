from django.apps import AppConfig


class OidcConfig(AppConfig):
    name = "chave.oidc"
    label = "oidc"
    verbose_name = "OpenID Connect provider"

    def ready(self):
        # Chave's own sign-out ends the SSO session and tells the portals (back-channel logout);
        # the login app sends the signal without knowing the provider.
        # Receivers are connected by name and imported at the first send (chave/receivers.py).
        from chave.federation.signals import approving, consent_revoked
        from chave.login.signals import signed_out
        from chave.receivers import connect

        connect(signed_out, "chave.oidc.logout.end_browser_sso_session",
                dispatch_uid="chave.oidc.logout.end_browser_sso_session")

        # A citizen who withdraws consent to a portal leaves it no live token.
        connect(consent_revoked, "chave.oidc.services.revoke_tokens_of_withdrawn_consent",
                dispatch_uid="chave.oidc.services.revoke_tokens_of_withdrawn_consent")

        # A portal whose sector_identifier_uri does not list its redirect URIs is not approved.
        connect(approving, "chave.oidc.services.check_sector_before_approval",
                dispatch_uid="chave.oidc.services.check_sector_before_approval")
