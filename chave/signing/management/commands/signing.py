"""``chave signing activate|deactivate|show|dev-pki``: the operator's side of remote signing.

``activate`` makes the citizen's signing key in the HSM and has the signing CA certify it.
Without ``--signing-pin`` a signing PIN is printed once and must be changed (personal area)
before the first signature; ``--signing-pin`` exists for demos and tests and is refused outside
``CHAVE_ENV=dev`` (a PIN on a command line stays in the shell history). ``deactivate`` revokes
the certificate and destroys the key. ``dev-pki`` makes the development signing hierarchy and
HSM token (refused in production).
"""

from __future__ import annotations

import json

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from chave.identity.services import find_citizen

from ... import services
from ...devpki import ensure_dev_pki

BY = "operator (CLI)"


class Command(BaseCommand):
    help = "Activate or deactivate a citizen's remote signing, show it, or make the development signing PKI."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", metavar="{activate,deactivate,show,dev-pki}", required=True)
        activate = sub.add_parser("activate", help="Activate signing: HSM key, certificate, signing PIN.")
        activate.add_argument("who", help="the citizen's mobile number, e-mail or NIC")
        activate.add_argument("--signing-pin", help="the signing PIN (CHAVE_ENV=dev only)")
        activate.add_argument("--json", action="store_true")
        deactivate = sub.add_parser("deactivate", help="Revoke the signing certificate and destroy the key.")
        deactivate.add_argument("who")
        show = sub.add_parser("show", help="The citizen's signing credential.")
        show.add_argument("who")
        show.add_argument("--json", action="store_true")
        sub.add_parser("dev-pki", help="Make the development signing CA, OCSP, TSA and HSM token (idempotent).")

    def handle(self, *args, action, **options):
        if action == "dev-pki":
            try:
                directory = ensure_dev_pki()
            except ImproperlyConfigured as e:
                raise CommandError(str(e))
            self.stdout.write(_("Signing PKI ready in %(dir)s") % {"dir": directory})
            return
        citizen = find_citizen(options["who"])
        if citizen is None:
            raise CommandError(_("No citizen with this mobile number, e-mail address or NIC."))
        if action == "activate":
            self._activate(citizen, options)
        elif action == "deactivate":
            if not services.deactivate_signing(citizen, by=BY, channel="cli"):
                raise CommandError(_("Signing is not active for this citizen."))
            self.stdout.write(_("Signing deactivated: certificate revoked, key destroyed."))
        else:
            self._show(citizen, options["json"])

    def _activate(self, citizen, options):
        pin = options.get("signing_pin")
        if pin is not None and settings.CHAVE_ENV != "dev":
            raise CommandError(_("--signing-pin is only accepted with CHAVE_ENV=dev."))
        key = citizen.key
        if key is None:
            raise CommandError(_("This citizen has no Digital Mobile Key."))
        try:
            activated = services.activate_signing(key, pin, by=BY, channel="cli")
        except ValidationError as e:
            raise CommandError(" ".join(str(m) for m in e.messages))
        credential = activated.credential
        if options["json"]:
            self.stdout.write(json.dumps({
                "credential_id": credential.credential_id, "certificate_serial": credential.serial_number,
                "not_after": credential.not_after.isoformat(), "temporary_signing_pin": activated.temporary_pin,
            }))
            return
        self.stdout.write(_("Signing active: credential %(credential)s, certificate %(serial)s until %(until)s.") % {
            "credential": credential.credential_id, "serial": credential.serial_number,
            "until": f"{credential.not_after:%Y-%m-%d}"})
        if activated.temporary_pin:
            self.stdout.write(_("Signing PIN (shown once; the citizen changes it in the personal area before "
                                "signing): %(pin)s") % {"pin": activated.temporary_pin})

    def _show(self, citizen, as_json):
        credential = services.active_credential(citizen)
        if credential is None:
            raise CommandError(_("Signing is not active for this citizen."))
        data = {
            "credential_id": credential.credential_id, "status": credential.status,
            "certificate_serial": credential.serial_number, "subject": services.certificate(credential).subject.rfc4514_string(),
            "not_after": credential.not_after.isoformat(), "signing_pin_must_change": credential.pin_must_change,
        }
        if as_json:
            self.stdout.write(json.dumps(data))
        else:
            for name, value in data.items():
                self.stdout.write(f"{name}: {value}")
