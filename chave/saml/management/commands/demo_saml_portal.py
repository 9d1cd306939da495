"""``chave demo_saml_portal [--port 8002]``: run the SAML demo portal (``examples/demo_portal``,
``saml_app``) beside Chave.

Like ``chave demo_portal``: the portal imports nothing from Chave; this command checks that
``chave seed_demo`` registered and approved it (its entity ID, and the certificate it has now),
then serves it with waitress in the foreground until SIGINT or SIGTERM, pointed at Chave's
``CHAVE_PUBLIC_URL``, its key and certificate in ``CHAVE_DATA_DIR/demo_saml_portal``.
``chave serve --with-demo-saml-portal`` runs this command as a child process.
"""

from __future__ import annotations

import os
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.utils.translation import gettext as _

from chave.oidc.management.commands.demo_portal import portal_module, portal_package, portal_url

DEFAULT_PORT = 8002


class Command(BaseCommand):
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

        def ready(bound_port):
            self.stdout.write(_("SAML demo portal (%(name)s) at %(url)s — it signs citizens in with Chave at "
                                "%(issuer)s") % {"name": sp.relying_party.name, "url": f"{base_url}/", "issuer": issuer})
            if not os.environ.get("CHAVE_SERVE_CHILD"):  # under `chave serve`, the service says it once
                self.stdout.write(_("Press Ctrl-C to stop."))
            self.stdout.flush()

        try:
            package.serve(config, host=host, port=port, ready=ready)
        except OSError as exc:
            raise CommandError(_("Cannot listen on %(host)s:%(port)s: %(error)s")
                               % {"host": host, "port": port, "error": exc.strerror or exc})
        self.stdout.write(_("Stopped."))

    def _registration(self, base_url: str):
        from chave.federation.models import RelyingParty
        from chave.public.management.commands.seed_demo import demo_saml_portal, demo_saml_portal_metadata
        from chave.saml.services import read_metadata

        try:
            sp = demo_saml_portal(base_url)
        except DatabaseError as exc:
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CommandError(_("The database cannot be used (%(error)s). Is it running, and was `chave migrate` "
                                 "run?") % {"error": detail})
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
