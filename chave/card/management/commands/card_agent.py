"""``chave card-agent``: the citizen's card agent, on 127.0.0.1 only (see ``chave.card.agent``).

``chave card-agent [--port P] [--service URL] [--card LABEL]``: serves the one website
``--service`` (default ``CHAVE_PUBLIC_URL``) on port ``--port`` (default
``CHAVE_CARD_AGENT_PORT``), signing with the card through ``CHAVE_CARD_PKCS11_MODULE``
(SoftHSM test cards by default, with ``CHAVE_CARD_DEV_DIR/softhsm2.conf``). There is no option to
listen elsewhere than 127.0.0.1.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.core.management.base import CommandError
from django.utils.translation import gettext as _

from chave.card import agent as card_agent
from chave.card import tokens
from chave.commands import ChaveCommand


class Command(ChaveCommand):
    help = "Run the Citizen Card agent on 127.0.0.1 for one website (the card PIN is typed on its own page)."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=None, help="default: CHAVE_CARD_AGENT_PORT")
        parser.add_argument("--service", default=None, help="the website it signs in to (default: CHAVE_PUBLIC_URL)")
        parser.add_argument("--card", default=None, help="the token label of the card to use, when several")

    def handle(self, *args, port, service, card, **options):
        tokens.use_dev_softhsm()
        port = settings.CHAVE_CARD_AGENT_PORT if port is None else port
        try:
            app = card_agent.CardAgent(service_url=service or settings.CHAVE_PUBLIC_URL, port=port, token_label=card)
            server = card_agent.make_server(app)
        except (ValueError, OSError) as exc:
            raise CommandError(_("The card agent cannot start: %(error)s") % {"error": exc})
        if os.environ.get("CHAVE_SERVE_CHILD"):  # under `chave serve`, the service says how to stop once
            self.stdout.write(_("Card agent for %(service)s listening on %(url)s.") % {
                "service": app.service_origin, "url": app.own_origin})
        else:
            self.stdout.write(_("Card agent for %(service)s listening on %(url)s (Ctrl-C stops it).") % {
                "service": app.service_origin, "url": app.own_origin})
        self.stdout.flush()
        try:
            server.run()
        except KeyboardInterrupt:
            pass
        finally:
            server.close()
