"""``chave dev-pki init``: the development PKI (development and tests; refused in production).

The Citizen Card test hierarchy below, and the signing hierarchy of :mod:`chave.signing.devpki`
(signing root and sub-CA, OCSP responder, time-stamp authority, and the SoftHSM2 token that
plays the HSM).

Creates, once, under ``CHAVE_CARD_DEV_DIR/pki``: a "Citizen Card (TEST)" root, an authentication
sub-CA and an OCSP responder (keys 0600). Chave serves the sub-CA's CRL at ``/pki/card/crl`` and
answers OCSP at ``/pki/card/ocsp`` from these files. Running it again changes nothing.
"""

from __future__ import annotations

import json

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError
from django.utils.translation import gettext as _

from chave import clock
from chave.card.devcards import refuse_in_production
from chave.card.pki import DevPki
from chave.commands import ChaveCommand
from chave.signing.devpki import ensure_dev_pki


class Command(ChaveCommand):
    help = ("The development PKI: `init` creates the Citizen Card test root, authentication sub-CA and OCSP "
            "responder, and the signing CA, OCSP responder, time-stamp authority and HSM token.")

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["init"])
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, action, json: bool = False, **options):
        try:
            refuse_in_production("chave dev-pki")
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc))
        pki = DevPki()
        created = pki.init(now=clock.now())
        try:
            signing_directory = ensure_dev_pki()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc))
        result = {"created": created, "directory": str(pki.directory), "root": str(pki.root_path),
                  "sub_ca": str(pki.sub_ca_path), "signing_directory": str(signing_directory)}
        if json:
            self.stdout.write(_dumps(result))
            return
        self.stdout.write(_("Created the Citizen Card test PKI in %(dir)s.") % {"dir": pki.directory} if created
                          else _("The Citizen Card test PKI already exists in %(dir)s.") % {"dir": pki.directory})
        self.stdout.write(_("Test root: %(path)s") % {"path": pki.root_path})
        self.stdout.write(_("Signing CA, OCSP responder, time-stamp authority and HSM token: %(dir)s")
                          % {"dir": signing_directory})


def _dumps(value) -> str:
    return json.dumps(value, sort_keys=True)
