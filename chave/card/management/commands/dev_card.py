"""``chave dev-card issue``: a test Citizen Card as a SoftHSM token (development and tests only).

``chave dev-card issue --nic N --name "Full Name" [--given-name G --family-name F]
[--birth-date YYYY-MM-DD] [--pin PIN] [--expired|--revoked] [--json]`` makes a token holding an
authentication key (generated on the token) and its certificate from the test PKI (``chave
dev-pki init`` first), NIC in the subject as the real card has it, and records the identity in
the local civil records (birth date default: an adult; not with ``--no-record``). ``chave
dev-card list`` lists the cards.
SoftHSM's configuration is ``CHAVE_CARD_DEV_DIR/softhsm2.conf``; nothing global is touched.
"""

from __future__ import annotations

import datetime as dt
import json

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management.base import CommandError
from django.db import DatabaseError
from django.utils.translation import gettext as _

from chave.card import devcards, tokens
from chave.card.pki import PkiError
from chave.commands import ChaveCommand


class Command(ChaveCommand):
    help = "Test Citizen Cards (SoftHSM tokens): `issue` makes one, `list` lists them."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["issue", "list"])
        parser.add_argument("--nic", help="the 8-digit civil identification number")
        parser.add_argument("--name", help="the full name, as on the card")
        parser.add_argument("--given-name", default="")
        parser.add_argument("--family-name", default="")
        parser.add_argument("--birth-date", help="YYYY-MM-DD (default: an adult's)")
        parser.add_argument("--pin", help="the card PIN (default: 4 random digits, printed)")
        state = parser.add_mutually_exclusive_group()
        state.add_argument("--expired", action="store_true", help="a card (and document) past its expiry date")
        state.add_argument("--revoked", action="store_true", help="a card whose certificate is revoked")
        parser.add_argument("--no-record", action="store_true",
                            help="do not record the holder in the local civil records (the caller has)")
        parser.add_argument("--json", action="store_true", help="print the result as JSON (with the certificate)")

    def handle(self, *args, action, **options):
        try:
            devcards.refuse_in_production("chave dev-card")
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc))
        if action == "list":
            return self.list_cards(options["json"])
        if not options["nic"] or not options["name"]:
            raise CommandError(_("Give --nic and --name."))
        birth_date = None
        if options["birth_date"]:
            try:
                birth_date = dt.date.fromisoformat(options["birth_date"])
            except ValueError:
                raise CommandError(_("--birth-date: use YYYY-MM-DD."))
        try:
            card = devcards.issue_card(
                nic=options["nic"], full_name=" ".join(options["name"].split()), given_name=options["given_name"],
                family_name=options["family_name"], birth_date=birth_date, pin=options["pin"],
                expired=options["expired"], revoked=options["revoked"], record=not options["no_record"],
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages))
        except (PkiError, tokens.CardError) as exc:
            raise CommandError(str(exc))
        except DatabaseError as exc:
            raise CommandError(_("The database cannot be used (%(error)s). Was `chave migrate` run?")
                               % {"error": exc.__class__.__name__})
        if options["json"]:
            self.stdout.write(json.dumps({
                "nic": card.nic, "name": card.full_name, "token_label": card.token_label, "pin": card.pin,
                "certificate_serial": card.certificate_serial, "not_after": card.not_after.isoformat(),
                "revoked": card.revoked, "certificate": card.certificate_pem,
            }, sort_keys=True))
            return
        self.stdout.write(_("Issued a test Citizen Card for %(name)s (NIC %(nic)s).") % {
            "name": card.full_name, "nic": card.nic})
        self.stdout.write(_("  Card (token): %(label)s") % {"label": card.token_label})
        self.stdout.write(_("  Card PIN:     %(pin)s") % {"pin": card.pin})
        self.stdout.write(_("  Valid until:  %(date)s%(state)s") % {
            "date": card.not_after.date().isoformat(), "state": _(" (revoked)") if card.revoked else ""})
        self.stdout.write(_("Run the card agent with: %(command)s") % {"command": ".venv/bin/chave card-agent"})

    def list_cards(self, as_json: bool) -> None:
        tokens.use_dev_softhsm()
        try:
            cards = tokens.list_cards()
        except tokens.CardError as exc:
            raise CommandError(str(exc))
        if as_json:
            self.stdout.write(json.dumps([{"token_label": c.label, "holder": c.holder} for c in cards]))
            return
        for card in cards:
            self.stdout.write(f"{card.label}\t{card.holder}")
