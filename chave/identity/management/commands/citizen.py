"""``chave citizen add`` and ``chave citizen show``: the operator's view of citizens and keys.

``add`` records what the operator read on the identity document in the local civil records and
registers the key in one transaction: either both are written or nothing is. The operator vouches
for the contacts (``contacts_verified_by="operator (CLI)"``), so the key is active at once. Without
``--pin`` a temporary PIN is printed once; the citizen must change it at the first sign-in.
``--pin`` exists for demos and tests and is refused outside ``CHAVE_ENV=dev``: a PIN typed on a
command line stays in the shell history and the process list.

As at the counter, nothing is registered unless the citizen accepted the terms of use: the
operator says so with ``--terms-accepted`` (after giving them the terms, ``/terms/``), and the
acceptance is recorded with the key (channel ``cli``), in the same transaction.

Every argument is parsed by :mod:`chave.identity.validation`; all bad arguments are reported
together, one line each, and the command exits non-zero without a traceback.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from chave import clock
from chave.commands import ChaveCommand
from chave.identity import services, validation
from chave.identity.models import Citizen, ContactKind, DocType, Key, KeyStatus
from chave.identity.registry import DocumentRef, IdentityRecord, LocalRecords
from chave.public import terms

VERIFIED_BY = "operator (CLI)"
# Without --doc-expiry the document is taken to expire this many years from today: the usual
# validity of a Citizen Card for an adult. Operators should give the date printed on the document.
DEFAULT_DOC_EXPIRY_YEARS = 5
FULL_NAME_MAX = Citizen._meta.get_field("full_name").max_length
PART_NAME_MAX = Citizen._meta.get_field("given_name").max_length

# Which argument a refusal of register_citizen is about, so the operator knows what to fix.
_SERVICE_ERROR_FLAG = {
    "too_young": "--birth-date",
    "document_expired": "--doc-expiry",
    "mobile_taken": "--phone",
    "email_taken": "--email",
    "x_taken": "--x-user-id",
    "no_contact": "--phone / --email",
    "pin_format": "--pin",
    "pin_trivial": "--pin",
    "pin_birth_date": "--pin",
}


@dataclass(frozen=True)
class Registration:
    record: IdentityRecord
    contacts: list[services.ContactInput]
    pin: str | None
    language: str


def years_after(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a year that has none
        return day.replace(year=day.year + years, day=28)


def _messages(exc: ValidationError) -> str:
    return " ".join(str(m) for m in exc.messages)


class Command(ChaveCommand):
    help = "Register a citizen's Digital Mobile Key (add) or look one up (show)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", metavar="{add,show}", required=True)

        add = sub.add_parser(
            "add",
            help="Register a citizen and activate their key.",
            description=(
                "Record the identity read on the document and register an active key. Portuguese citizens: "
                "--nic; foreign residents: --doc-type, --doc-country and --doc-number. Give --phone or "
                "--email (or both), and --terms-accepted once the citizen accepted the terms of use. Without "
                "--pin a temporary PIN is printed once; it must be changed at the first sign-in."
            ),
        )
        add.add_argument("--nic", help="civil identification number (8 digits) or Citizen Card document number")
        add.add_argument("--doc-type", help="foreign document: passport, residence_permit or residence_card")
        add.add_argument("--doc-country", help="foreign document: issuing country, two letters (BR, FR, …)")
        add.add_argument("--doc-number", help="foreign document: its number")
        add.add_argument("--name", required=True, help="full name as on the document")
        add.add_argument("--given-name", required=True, help="given name(s)")
        add.add_argument("--family-name", required=True, help="family name(s)")
        add.add_argument("--birth-date", required=True, help="YYYY-MM-DD")
        add.add_argument("--phone", help="mobile number; +351 is assumed without a country code")
        add.add_argument("--email", help="e-mail address")
        add.add_argument("--x-user-id", help="numeric user id of the citizen's X account")
        add.add_argument("--nif", help="tax number (NIF), 9 digits")
        add.add_argument(
            "--doc-expiry",
            help=f"document expiry, YYYY-MM-DD (default: {DEFAULT_DOC_EXPIRY_YEARS} years from today); "
            "the key is valid until then (+30 days for a Citizen Card)",
        )
        add.add_argument(
            "--language", choices=[code for code, _name in settings.LANGUAGES], default=settings.LANGUAGE_CODE,
            help="language of the messages sent to the citizen",
        )
        add.add_argument("--terms-accepted", action="store_true",
                         help="the citizen was given the terms of use (/terms/) and accepted them: recorded with "
                              "the key; required")
        add.add_argument("--pin", help="set this PIN instead of a temporary one (development only)")
        add.add_argument("--json", action="store_true", help="print one JSON object")

        show = sub.add_parser("show", help="Show a citizen and the state of their key.")
        show.add_argument("who", metavar="NUMBER|EMAIL|NIC", help="mobile number, e-mail address or NIC")
        show.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options):
        try:
            if options["action"] == "add":
                self.add(options)
            else:
                self.show(options)
        except DatabaseError as exc:
            # Most often a database that was never migrated or is not running: say so, no traceback.
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CommandError(_("The database cannot be used (%(error)s). Is it running, and was `chave migrate` "
                                 "run?") % {"error": detail})

    # --- add ------------------------------------------------------------------------------

    def add(self, options) -> None:
        if options["pin"] is not None and settings.CHAVE_ENV != "dev":
            raise CommandError(_(
                "--pin is accepted only in development (CHAVE_ENV=dev): a PIN typed on a command line stays "
                "in the shell history and the process list. Leave it out: a temporary PIN is printed once."
            ))
        reg = self.parse_registration(options)
        doc = reg.record.doc
        try:
            # The civil record and the key are written together: a refused registration leaves no
            # record behind (nor overwrites the record of an existing citizen).
            with transaction.atomic():
                LocalRecords().store(reg.record)
                key, temporary_pin = services.register_citizen(
                    doc, reg.contacts, pin=reg.pin, contacts_verified_by=VERIFIED_BY, language=reg.language,
                    channel="cli",
                )
                terms.record_acceptance(key.citizen, channel="cli")
        except ValidationError as exc:
            flag = _SERVICE_ERROR_FLAG.get(exc.code)
            if exc.code == "already_registered":
                flag = "--nic" if doc.doc_type == DocType.CITIZEN_CARD else "--doc-number"
            raise CommandError(f"{flag}: {_messages(exc)}" if flag else _messages(exc))
        except IntegrityError:
            raise CommandError(_("This person or contact is already registered."))

        key = Key.objects.select_related("citizen").get(pk=key.pk)
        described = describe(key.citizen, key)
        if options["json"]:
            if temporary_pin is not None:
                described["temporary_pin"] = temporary_pin
            self.stdout.write(json.dumps(described, indent=2))
            return
        self.stdout.write(_("Registered %(name)s (%(document)s).") % {
            "name": key.citizen.full_name, "document": key.citizen.document_label})
        self.write_text(described)
        if temporary_pin is not None:
            self.stdout.write("")
            self.stdout.write(_("Temporary PIN: %(pin)s") % {"pin": temporary_pin})
            self.stdout.write(_(
                "It is shown only this once. Give it to the citizen: it must be changed at the first sign-in "
                "and stops working on %(date)s."
            ) % {"date": timezone.localdate(key.pin_expires_at).isoformat()})

    def parse_registration(self, options) -> Registration:
        """Every argument through chave.identity.validation; all problems reported at once."""
        errors: list[str] = []

        def parse(flag: str, function, value, **kwargs):
            if value is None:
                return None
            try:
                return function(value, **kwargs)
            except ValidationError as exc:
                errors.append(f"{flag}: {_messages(exc)}")
                return None

        foreign = [options["doc_type"], options["doc_country"], options["doc_number"]]
        doc = None
        if options["nic"] is not None:
            if any(v is not None for v in foreign):
                errors.append(_("Give either --nic (Portuguese citizen) or --doc-type, --doc-country and "
                                "--doc-number (foreign document), not both."))
            else:
                nic = parse("--nic", validation.parse_nic, options["nic"])
                doc = DocumentRef(DocType.CITIZEN_CARD, "PT", nic) if nic else None
        elif all(v is None for v in foreign):
            errors.append(_("Give --nic for a Portuguese citizen, or --doc-type, --doc-country and --doc-number "
                            "for a foreign document."))
        elif any(v is None for v in foreign):
            errors.append(_("A foreign document needs all three of --doc-type, --doc-country and --doc-number."))
        else:
            doc_type = parse("--doc-type", validation.parse_doc_type, options["doc_type"])
            if doc_type == DocType.CITIZEN_CARD:
                errors.append("--doc-type: " + _("For a Citizen Card use --nic; --doc-type is for passport, "
                                                 "residence_permit or residence_card."))
                doc_type = None
            country = parse("--doc-country", validation.parse_country, options["doc_country"])
            number = parse("--doc-number", validation.parse_doc_number, options["doc_number"])
            if doc_type and country and number:
                doc = DocumentRef(doc_type, country, number)

        full_name = parse("--name", validation.parse_name, options["name"], max_length=FULL_NAME_MAX)
        given_name = parse("--given-name", validation.parse_name, options["given_name"], max_length=PART_NAME_MAX)
        family_name = parse("--family-name", validation.parse_name, options["family_name"], max_length=PART_NAME_MAX)
        birth_date = parse("--birth-date", validation.parse_date, options["birth_date"])
        if options["doc_expiry"] is None:
            doc_expiry = years_after(clock.today(), DEFAULT_DOC_EXPIRY_YEARS)
        else:
            doc_expiry = parse("--doc-expiry", validation.parse_date, options["doc_expiry"])
        nif = parse("--nif", validation.parse_nif, options["nif"]) or ""

        contacts = []
        for flag, option, kind, function in (
            ("--phone", "phone", ContactKind.MOBILE, validation.parse_mobile),
            ("--email", "email", ContactKind.EMAIL, validation.parse_email),
            ("--x-user-id", "x_user_id", ContactKind.X, validation.parse_x_user_id),
        ):
            value = parse(flag, function, options[option])
            if value is not None:
                contacts.append(services.ContactInput(kind, value))
        if options["phone"] is None and options["email"] is None:
            errors.append(_("Give --phone or --email (or both): the key needs a way to send codes."))

        pin = None
        if options["pin"] is not None:
            pin = parse("--pin", validation.check_pin_rules, options["pin"], birth_date=birth_date)

        if not options.get("terms_accepted"):
            errors.append("--terms-accepted: " + _("Give the citizen the terms of use (the /terms/ page) and add "
                                                   "--terms-accepted once they accepted them: as at the counter, no "
                                                   "key is registered without it."))
        if errors:
            raise CommandError("\n  ".join([_("Nothing was registered:"), *errors]))
        record = IdentityRecord(
            doc=doc, full_name=full_name, given_name=given_name, family_name=family_name,
            birth_date=birth_date, document_expiry=doc_expiry, nif=nif,
        )
        return Registration(record=record, contacts=contacts, pin=pin, language=options["language"])

    # --- show -----------------------------------------------------------------------------

    def show(self, options) -> None:
        citizen = services.find_citizen(options["who"])
        key = getattr(citizen, "key", None) if citizen else None
        if citizen is None:
            raise CommandError(_("No citizen has this mobile number, e-mail address or NIC: %(who)s")
                               % {"who": options["who"]})
        described = describe(citizen, key)
        if options["json"]:
            self.stdout.write(json.dumps(described, indent=2))
            return
        self.stdout.write(f"{citizen.full_name} ({citizen.document_label})")
        self.write_text(described)

    # --- text output ----------------------------------------------------------------------

    def write_text(self, d: dict) -> None:
        key = d["key"]
        lines = [
            (_("Given name"), d["given_name"]),
            (_("Family name"), d["family_name"]),
            (_("Birth date"), d["birth_date"]),
            (_("NIF"), d["nif"] or "—"),
            (_("Document expiry"), d["document_expiry"]),
            (_("Language"), d["language"]),
        ]
        if key is None:
            lines.append((_("Key"), _("none")))
        else:
            lines += [
                (_("Key"), str(KeyStatus(key["status"]).label)),
                (_("Valid until"), key["valid_until"]),
                (_("PIN"), _("none: a new PIN must be issued (a letter at a counter)") if key["pin"] == "none"
                 else _("temporary, to be changed at the first sign-in; works until %(when)s")
                 % {"when": _local(key["temporary_pin_expires_at"])} if key["pin"] == "temporary"
                 else _("chosen by the citizen")),
                (_("Wrong PINs in a row"), str(key["pin_failures"])),
            ]
            if key["locked_until"]:
                lines.append((_("Locked until"), _local(key["locked_until"])))
            lines.append((_("Last used"), _local(key["last_used_at"]) if key["last_used_at"] else _("never")))
            labels = {"mobile": _("Mobile number"), "email": _("E-mail address"), "x": _("X account")}
            for kind, contact in d["contacts"].items():
                state = _("verified") if contact["verified"] else _("not verified")
                if not contact["live"]:
                    state += ", " + _("released")
                lines.append((labels.get(kind, kind), f"{contact['value']} ({state})"))
        width = max(len(label) for label, _value in lines)
        for label, value in lines:
            self.stdout.write(f"  {label + ':':<{width + 1}} {value}")


def _local(iso: str) -> str:
    return timezone.localtime(dt.datetime.fromisoformat(iso)).strftime("%Y-%m-%d %H:%M")


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def describe(citizen: Citizen, key: Key | None) -> dict:
    """What an operator may see of a citizen and their key: full contacts, never the PIN hash."""
    now = clock.now()
    result = {
        "citizen_id": citizen.pk,
        "document": {"type": citizen.doc_type, "country": citizen.doc_country, "number": citizen.doc_number},
        "nic": citizen.nic,
        "full_name": citizen.full_name,
        "given_name": citizen.given_name,
        "family_name": citizen.family_name,
        "birth_date": citizen.birth_date.isoformat(),
        "nif": citizen.nif or None,
        "document_expiry": citizen.document_expiry.isoformat(),
        "language": citizen.language,
        "key": None,
        "contacts": {},
    }
    if key is None:
        return result
    status = key.effective_status(now)
    result["key"] = {
        "status": str(status),
        "valid_until": key.valid_until.isoformat(),
        # "none" when the last PIN was voided (a letter lost or reversed): nothing opens the key.
        "pin": "none" if not key.pin_hash else "temporary" if key.pin_is_temporary else "chosen",
        "pin_is_temporary": bool(key.pin_hash) and key.pin_is_temporary,
        "temporary_pin_expires_at": _iso(key.pin_expires_at) if key.pin_hash and key.pin_is_temporary else None,
        "pin_failures": key.pin_failures,
        "locked_until": _iso(key.locked_until) if status == "locked" else None,
        "created_at": _iso(key.created_at),
        "activated_at": _iso(key.activated_at),
        "last_used_at": _iso(key.last_used_at),
    }
    order = [ContactKind.MOBILE, ContactKind.EMAIL, ContactKind.X]
    for contact in sorted(key.contacts.all(), key=lambda c: order.index(c.kind)):
        result["contacts"][contact.kind] = {
            "value": contact.value,
            "verified": contact.verified_at is not None,
            "verified_at": _iso(contact.verified_at),
            "live": contact.live,
        }
    return result
