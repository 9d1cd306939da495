"""``chave seed_demo``: the demo citizen of ``make run`` (development only).

Idempotent: the first run records the demo identity and registers an active key with the demo
PIN; later runs print the same credentials. So that the demo keeps working, a later run also
unlocks the demo key when wrong PINs locked or blocked it, and sets the demo PIN again when it was
changed. Everything goes through the identity services, as an operator's registration would.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, transaction
from django.utils.translation import gettext as _

from chave import clock
from chave.identity import pins, services
from chave.identity.models import Citizen, ContactKind, DocType, KeyStatus
from chave.identity.registry import DocumentRef, IdentityRecord, LocalRecords

DEMO_NIC = "14893256"
DEMO_FULL_NAME = "Maria Exemplo Sousa"
DEMO_GIVEN_NAME = "Maria"
DEMO_FAMILY_NAME = "Exemplo Sousa"
DEMO_BIRTH_DATE = dt.date(1985, 3, 14)
DEMO_PHONE = "+351912345678"
DEMO_PHONE_TYPED = "912 345 678"
DEMO_EMAIL = "maria@example.pt"
# Passes the PIN rules: not a repeated digit, not a run, not the birth date or year.
DEMO_PIN = "4719"
DEMO_DOCUMENT_YEARS = 5
SEEDED_BY = "seed_demo"


def demo_citizen() -> Citizen | None:
    return (
        Citizen.objects.prefetch_related("keys")
        .filter(doc_type=DocType.CITIZEN_CARD, doc_country="PT", doc_number=DEMO_NIC)
        .first()
    )


def _document_expiry() -> dt.date:
    today = clock.today()
    try:
        return today.replace(year=today.year + DEMO_DOCUMENT_YEARS)
    except ValueError:  # 29 February
        return today.replace(year=today.year + DEMO_DOCUMENT_YEARS, day=28)


class Command(BaseCommand):
    help = "Create the demo citizen (development only) and print their mobile number, e-mail and PIN."

    def handle(self, *args, **options):
        if settings.CHAVE_ENV != "dev":
            raise CommandError(_("seed_demo runs only in development (CHAVE_ENV=dev): the demo PIN is public."))
        try:
            notes = self.seed()
        except DatabaseError as exc:
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CommandError(_("The database cannot be used (%(error)s). Is it running, and was `chave migrate` "
                                 "run?") % {"error": detail})
        except ValidationError as exc:
            raise CommandError(_("The demo citizen could not be set up: %(reason)s")
                               % {"reason": " ".join(str(m) for m in exc.messages)})
        for note in notes:
            self.stdout.write(note)
        self.print_credentials()

    def seed(self) -> list[str]:
        citizen = demo_citizen()
        key = citizen.key if citizen else None
        status = key.effective_status(clock.now()) if key else None
        if key is None or status in (KeyStatus.CANCELLED, KeyStatus.EXPIRED):
            doc = DocumentRef(DocType.CITIZEN_CARD, "PT", DEMO_NIC)
            with transaction.atomic():
                LocalRecords().store(IdentityRecord(
                    doc=doc, full_name=DEMO_FULL_NAME, given_name=DEMO_GIVEN_NAME, family_name=DEMO_FAMILY_NAME,
                    birth_date=DEMO_BIRTH_DATE, document_expiry=_document_expiry(),
                ))
                services.register_citizen(
                    doc,
                    [services.ContactInput(ContactKind.MOBILE, DEMO_PHONE),
                     services.ContactInput(ContactKind.EMAIL, DEMO_EMAIL)],
                    pin=DEMO_PIN, contacts_verified_by=SEEDED_BY, channel="cli",
                )
            if key is None:
                return [_("Created the demo citizen.")]
            return [_("The demo key was %(status)s: a new demo key is registered.")
                    % {"status": str(KeyStatus(status).label).lower()}]

        notes = [_("The demo citizen already exists.")]
        if key.status in (KeyStatus.LOCKED, KeyStatus.BLOCKED):
            services.unlock_key(key, by=SEEDED_BY, channel="cli")
            notes.append(_("It was locked after wrong PINs: it is unlocked again."))
            key.refresh_from_db()
        if not pins.verify(key.pin_hash, DEMO_PIN)[0]:
            services.change_pin(key, DEMO_PIN, reason=SEEDED_BY, channel="cli")
            notes.append(_("Its PIN had been changed: it is the demo PIN again."))
        return notes

    def print_credentials(self) -> None:
        base = settings.CHAVE_PUBLIC_URL.rstrip("/")
        self.stdout.write("")
        self.stdout.write(_("Demo citizen: %(name)s (NIC %(nic)s)") % {"name": DEMO_FULL_NAME, "nic": DEMO_NIC})
        self.stdout.write(_("  Mobile number: %(phone)s (or type %(typed)s)") % {
            "phone": DEMO_PHONE, "typed": DEMO_PHONE_TYPED})
        self.stdout.write(_("  E-mail:        %(email)s") % {"email": DEMO_EMAIL})
        self.stdout.write(_("  PIN:           %(pin)s") % {"pin": DEMO_PIN})
        self.stdout.write(_("Sign in at %(url)s") % {"url": f"{base}/login/"})
        self.stdout.write(_("Security codes are not really sent in development: read them at %(url)s") % {
            "url": f"{base}/dev/outbox/"})
        self.stdout.write(_("or with: %(command)s") % {"command": f"chave outbox --to {DEMO_PHONE} --last --json"})
        self.stdout.write(_("If wrong PINs lock the demo key, run `chave seed_demo` again: it unlocks it."))
