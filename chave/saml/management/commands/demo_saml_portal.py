"""``chave demo_saml_portal [--port 8002]``: run the SAML demo portal (``examples/demo_portal``,
``saml_app``) beside Chave.

Like ``chave demo_portal``: the portal imports nothing from Chave; this command checks that
``chave seed_demo`` registered and approved it (its entity ID, and the certificate it has now),
then serves it with waitress in the foreground until SIGINT or SIGTERM, pointed at Chave's
``CHAVE_PUBLIC_URL``, its key and certificate in ``CHAVE_DATA_DIR/demo_saml_portal``.
``chave serve --with-demo-saml-portal`` runs this command as a child process.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import CommandError
from django.db import DatabaseError
from django.utils.translation import gettext as _

from chave.commands import ChaveCommand
from chave.oidc.management.commands.demo_portal import (database_unusable, portal_module, portal_package,
                                                        portal_url, serve_portal)

DEFAULT_PORT = 8002


class Command(ChaveCommand):
    help = "Run the SAML demo portal (a separate portal that signs citizens in with Chave over SAML 2.0)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")

    def handle(self, *args, host, port, **options):
        from chave.public.management.commands.seed_demo import demo_saml_portal_dir

        if settings.CHAVE_ENV == "production":
            raise CommandError(_("The demo portal is for development only."))
        if not 1 <= port <= 65535:
            raise CommandError(_("--port must be a number from 1 to 65535."))
        base_url = portal_url(host, port)
        package = portal_package()
        sp = self._registration(base_url)
        issuer = settings.CHAVE_PUBLIC_URL.rstrip("/")
        config = portal_module("saml_app").SamlConfig(issuer=issuer, base_url=base_url,
                                                      data_dir=demo_saml_portal_dir())

        serve_portal(self, package, config, host, port, _(
            "SAML demo portal (%(name)s) at %(url)s — it signs citizens in with Chave at %(issuer)s")
            % {"name": sp.relying_party.name, "url": f"{base_url}/", "issuer": issuer})

    def _registration(self, base_url: str):
        from chave.federation.models import RelyingParty
        from chave.public.management.commands.seed_demo import demo_saml_portal, demo_saml_portal_metadata
        from chave.saml.services import read_metadata

        try:
            sp = demo_saml_portal(base_url)
        except DatabaseError as exc:
            raise database_unusable(exc) from exc
        if sp is None:
            raise CommandError(_("The SAML demo portal is not registered for %(url)s: run `chave seed_demo "
                                 "--demo-saml-portal-url %(url)s` first.") % {"url": base_url})
        if sp.relying_party.state != RelyingParty.State.APPROVED:
            raise CommandError(_("The SAML demo portal's registration is %(state)s: run `chave seed_demo "
                                 "--demo-saml-portal-url %(url)s` to approve it.")
                               % {"state": sp.relying_party.get_state_display(), "url": base_url})
        if read_metadata(demo_saml_portal_metadata(base_url)).certificates != sp.certificates:
            raise CommandError(_("The SAML demo portal has a new certificate: run `chave seed_demo "
                                 "--demo-saml-portal-url %(url)s` to register it.") % {"url": base_url})
        return sp
