"""``chave signing activate|deactivate|show|dev-pki``: the operator's side of remote signing.

``integrator add --name … --soap`` makes an SCMD integrator and prints its HTTP Basic credentials
and ApplicationId once; ``integrator rotate USERNAME`` prints a new password (the old one stops
working); ``integrator list|disable|enable``. ``activate`` makes the citizen's signing key in the HSM and has the signing CA certify it.
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
from django.core.management.base import CommandError
from django.utils.translation import gettext as _

from chave.commands import ChaveCommand
from chave.identity.services import find_citizen

from ... import services
from ...devpki import ensure_dev_pki

BY = "operator (CLI)"


class Command(ChaveCommand):
    help = "Activate or deactivate a citizen's remote signing, show it, or make the development signing PKI."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", metavar="{activate,deactivate,show,dev-pki,integrator}",
                                    required=True)
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
        integrator = sub.add_parser("integrator", help="SCMD (SOAP) integrators: add, rotate, list, disable, enable.")
        isub = integrator.add_subparsers(dest="integrator_action", metavar="{add,rotate,list,disable,enable}",
                                         required=True)
        add = isub.add_parser("add", help="A new integrator: prints its Basic credentials and ApplicationId once.")
        add.add_argument("--name", required=True, help="the integrator's name (citizens see it in the code message)")
        add.add_argument("--soap", action="store_true", help="an integrator of the SCMD SOAP service")
        add.add_argument("--application-id", help="the ApplicationId it already sends (default: a new UUID)")
        add.add_argument("--json", action="store_true")
        rotate = isub.add_parser("rotate", help="A new password (printed once); the old one stops working.")
        rotate.add_argument("username")
        rotate.add_argument("--json", action="store_true")
        isub.add_parser("list", help="Every SCMD integrator (no secrets).")
        for verb in ("disable", "enable"):
            isub.add_parser(verb, help=f"{verb.capitalize()} an integrator.").add_argument("username")

    def handle(self, *args, action, **options):
        if action == "integrator":
            self._integrator(options)
            return
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

    def _integrator(self, options):
        from chave.scmd import services as scmd
        from chave.scmd.models import Integrator
        from chave.scmd.views import service_address

        verb = options["integrator_action"]
        if verb == "list":
            for integrator in Integrator.objects.order_by("name"):
                state = _("active") if integrator.active else _("disabled")
                self.stdout.write(f"{integrator.username}\t{integrator.application_id}\t{state}\t{integrator.name}")
            return
        if verb == "add":
            if not options["soap"]:
                raise CommandError(_("Only SCMD (SOAP) integrators are made here: add --soap. CSC integrators are "
                                     "approved portals that take a client_credentials token of scope csc."))
            try:
                made = scmd.add_integrator(options["name"], application_id=options.get("application_id"), by=BY)
            except ValidationError as e:
                raise CommandError(" ".join(str(m) for m in e.messages))
        else:
            integrator = scmd.find(options["username"])
            if integrator is None:
                raise CommandError(_("No SCMD integrator with this username."))
            if verb in ("disable", "enable"):
                scmd.set_active(integrator, verb == "enable", by=BY)
                self.stdout.write(_("Integrator %(user)s: %(state)s.") % {
                    "user": integrator.username, "state": _("active") if verb == "enable" else _("disabled")})
                return
            made = scmd.rotate_secret(integrator, by=BY)
        integrator = made.integrator
        data = {"name": integrator.name, "username": integrator.username, "password": made.password,
                "application_id": integrator.application_id, "wsdl": service_address() + "?wsdl",
                "encryption_certificate": settings.CHAVE_PUBLIC_URL.rstrip("/") + "/scmd/encryption.crt"}
        if options["json"]:
            self.stdout.write(json.dumps(data))
            return
        self.stdout.write(_("SCMD integrator %(name)s. The password is shown once: keep it now.") % data)
        for name in ("username", "password", "application_id", "wsdl", "encryption_certificate"):
            self.stdout.write(f"{name}: {data[name]}")

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
        # The certificate history, newest first: re-issues at document renewals, and their state.
        history = [{"serial": row.serial_number, "status": row.status, "not_before": row.not_before.isoformat(),
                    "not_after": row.not_after.isoformat()}
                   for row in credential.certificates.order_by("-issued_at", "-id")]
        if as_json:
            self.stdout.write(json.dumps({**data, "certificates": history}))
        else:
            for name, value in data.items():
                self.stdout.write(f"{name}: {value}")
            for row in history:
                self.stdout.write(f"certificate: {row['serial']} {row['status']} {row['not_before']} – {row['not_after']}")
