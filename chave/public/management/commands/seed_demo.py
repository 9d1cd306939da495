"""``chave seed_demo``: the demo citizen and the demo portal of ``make run`` (development only).

Idempotent: the first run records the demo identity and registers an active key with the demo
PIN; later runs print the same credentials. So that the demo keeps working, a later run also
unlocks the demo key when wrong PINs locked or blocked it, and sets the demo PIN again when it was
changed. Everything goes through the identity services, as an operator's registration would.

It also registers the Demo Portal (``examples/demo_portal``, started by ``chave demo_portal``)
as an approved relying party at ``--demo-portal-url`` (default ``http://127.0.0.1:8001``), once
per address, through the OpenID Connect registry's services: ``private_key_jwt`` with the keys
the portal publishes at its JWKS URI, its back-channel logout and post-logout addresses, a useful
set of attributes with the full name mandatory, and the lowest assurance level (every login
method is offered). A later run approves it again if it was suspended.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db import DatabaseError, transaction
from django.utils.translation import gettext as _

from chave import clock
from chave.commands import ChaveCommand
from chave.throttle import services as throttle
from chave.federation import services as federation
from chave.federation.levels import LEVEL_URIS
from chave.federation.models import RelyingParty
from chave.identity import pins, services
from chave.identity.models import Citizen, ContactKind, DocType, KeyStatus
from chave.identity.registry import DocumentRef, IdentityRecord, LocalRecords
from chave.oidc import services as oidc_services

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
DEMO_CARD_PIN = "2580"  # the demo Citizen Card's own PIN (the card agent asks for it)
# Counter staff for the tour: (username, name, role, counter); one password, known in development only.
DEMO_COUNTER = "Loja do Cidadão (demonstração)"
DEMO_STAFF = [
    ("balcao", "Rita Balcão", "clerk", DEMO_COUNTER),
    ("supervisor", "Sofia Supervisora", "supervisor", DEMO_COUNTER),
    ("portais", "Paulo Portais", "rp-admin", ""),
    ("correio", "Carla Correio", "mailroom", ""),
    ("auditor", "Artur Auditor", "auditor", ""),
]
DEMO_STAFF_PASSWORD = "balcao-demo-2026"
# The demo clerk's own test Citizen Card (same card PIN as the citizen's), for the counter's card sign-in.
DEMO_CLERK = {"username": "balcao", "nic": "27364518", "given_name": "Rita", "family_name": "Balcão"}
DEMO_SIGNING_PIN = "3691"  # the demo citizen's signing PIN (differs from the login PIN, as the rules say)
DEMO_DOCUMENT_YEARS = 5
SEEDED_BY = "seed_demo"

DEMO_PORTAL_NAME = "Portal de Demonstração"
DEMO_PORTAL_URL = "http://127.0.0.1:8001"
DEMO_PORTAL_NIF = "600084779"
DEMO_PORTAL_EMAIL = "demo-portal@chave.localhost"
# What the demo portal may ask for: names, birth date, the identity set (NIC, or the foreign
# document), contacts and the key's validity; the full name is needed to sign in.
DEMO_PORTAL_ATTRIBUTES = ["NomeCompleto", "NomeProprio", "NomeApelido", "DataNascimento", "NIC", "DocType",
                          "DocNationality", "DocNumber", "CorreioElectronico", "NumeroTelemovel", "DataValidade"]
DEMO_PORTAL_MANDATORY = ["NomeCompleto"]
# The SAML demo portal (examples/demo_portal/saml_app.py): registered from its metadata, the same
# attributes, its own name; it asks for the level the citizen picks on its page (2, 3 or 4).
DEMO_SAML_PORTAL_NAME = "Portal SAML de Demonstração"
DEMO_SAML_PORTAL_URL = "http://127.0.0.1:8002"
DEMO_SAML_PORTAL_DIR = "demo_saml_portal"  # under CHAVE_DATA_DIR: the portal's key and certificate


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


def demo_portal(url: str = DEMO_PORTAL_URL) -> RelyingParty | None:
    """The demo portal's registration for the portal at ``url`` (its name and callback), or None."""
    from chave.oidc.management.commands.demo_portal import portal_package

    callback = portal_package().endpoints(url)["redirect_uri"]
    for relying_party in RelyingParty.objects.filter(name=DEMO_PORTAL_NAME).order_by("pk"):
        if callback in relying_party.redirect_uris:
            return relying_party
    return None


def seed_demo_portal(url: str = DEMO_PORTAL_URL) -> tuple[RelyingParty, list[str]]:
    """Register the demo portal at ``url`` and approve it, unless that is done already; returns
    the party and what was done. Raises ``ValidationError`` (from the registry) for an address
    the registry refuses (http:// only on this machine), ``CommandError`` when the portal's
    source is missing."""
    from chave.oidc.management.commands.demo_portal import portal_package

    notes = []
    relying_party = demo_portal(url)
    if relying_party is None:
        addresses = portal_package().endpoints(url)
        relying_party = oidc_services.register_relying_party(
            name=DEMO_PORTAL_NAME, entity_nif=DEMO_PORTAL_NIF, contact_email=DEMO_PORTAL_EMAIL,
            redirect_uris=[addresses["redirect_uri"]],
            post_logout_redirect_uris=[addresses["post_logout_redirect_uri"]],
            backchannel_logout_uri=addresses["backchannel_logout_uri"],
            allowed_attributes=DEMO_PORTAL_ATTRIBUTES, mandatory_attributes=DEMO_PORTAL_MANDATORY,
            min_level=min(LEVEL_URIS), auth_method=RelyingParty.AuthMethod.PRIVATE_KEY_JWT,
            jwks_uri=addresses["jwks_uri"], by=SEEDED_BY,
        ).relying_party
        notes.append(_("Registered the demo portal as a relying party, approved."))
    if relying_party.state != RelyingParty.State.APPROVED:
        was = relying_party.state
        relying_party = federation.decide(relying_party, "approve", by=SEEDED_BY, reason="demo portal")
        if was == RelyingParty.State.SUSPENDED:
            notes.append(_("The demo portal was suspended: it is approved again."))
    return relying_party, notes


def demo_saml_portal(url: str = DEMO_SAML_PORTAL_URL):
    """The SAML demo portal's registration for the portal at ``url`` (its entity ID), or None."""
    from chave.oidc.management.commands.demo_portal import portal_module
    from chave.saml.models import ServiceProvider

    entity_id = portal_module("saml").endpoints(url)["entity_id"]
    return ServiceProvider.objects.select_related("relying_party").filter(entity_id=entity_id).first()


def demo_saml_portal_dir():
    return settings.DATA_DIR / DEMO_SAML_PORTAL_DIR


def demo_saml_portal_metadata(url: str, data_dir=None) -> str:
    """The SAML demo portal's metadata, as it publishes it at ``/saml/metadata`` (its key and
    certificate made in ``data_dir``, by default ``CHAVE_DATA_DIR/demo_saml_portal``, the first
    time, as it does on start)."""
    from chave.oidc.management.commands.demo_portal import portal_module

    saml = portal_module("saml")
    return saml.sp_metadata(url, saml.SpKey.load_or_create(data_dir or demo_saml_portal_dir()))


def seed_demo_saml_portal(url: str = DEMO_SAML_PORTAL_URL, data_dir=None):
    """Register the SAML demo portal at ``url`` from its metadata and approve it, unless that is
    done; its metadata again when its certificate changed (its key file was deleted). Returns the
    service provider and what was done. Raises ``ValidationError`` as the registry does."""
    from chave.saml import services as saml_services

    notes = []
    metadata = saml_services.read_metadata(demo_saml_portal_metadata(url, data_dir))
    sp = demo_saml_portal(url)
    if sp is None:
        sp = saml_services.register_service_provider(
            metadata=metadata, name=DEMO_SAML_PORTAL_NAME, entity_nif=DEMO_PORTAL_NIF, contact_email=DEMO_PORTAL_EMAIL,
            allowed_attributes=DEMO_PORTAL_ATTRIBUTES, mandatory_attributes=DEMO_PORTAL_MANDATORY,
            min_level=min(LEVEL_URIS), by=SEEDED_BY)
        notes.append(_("Registered the SAML demo portal as a service provider, approved."))
    elif sp.certificates != metadata.certificates:
        sp = saml_services.replace_metadata(sp, metadata, by=SEEDED_BY, reason="demo portal's new certificate")
        notes.append(_("The SAML demo portal has a new certificate: its metadata is registered again."))
    party = sp.relying_party
    if party.state != RelyingParty.State.APPROVED:
        was = party.state
        federation.decide(party, "approve", by=SEEDED_BY, reason="demo portal")
        sp.refresh_from_db()
        if was == RelyingParty.State.SUSPENDED:
            notes.append(_("The SAML demo portal was suspended: it is approved again."))
    return sp, notes


class Command(ChaveCommand):
    help = ("Create the demo citizen and register the demo portal (development only) and print how to sign in "
            "and where the portal is.")

    def add_arguments(self, parser):
        parser.add_argument("--demo-portal-url", default=DEMO_PORTAL_URL,
                            help=f"where the demo portal runs (default {DEMO_PORTAL_URL}; "
                                 f"`chave demo_portal --port` must match)")
        parser.add_argument("--demo-saml-portal-url", default=DEMO_SAML_PORTAL_URL,
                            help=f"where the SAML demo portal runs (default {DEMO_SAML_PORTAL_URL}; "
                                 f"`chave demo_saml_portal --port` must match)")

    def handle(self, *args, demo_portal_url, demo_saml_portal_url=DEMO_SAML_PORTAL_URL, **options):
        if settings.CHAVE_ENV != "dev":
            raise CommandError(_("seed_demo runs only in development (CHAVE_ENV=dev): the demo PIN is public."))
        demo_portal_url = demo_portal_url.rstrip("/")
        demo_saml_portal_url = demo_saml_portal_url.rstrip("/")
        for option, url, example in (("--demo-portal-url", demo_portal_url, DEMO_PORTAL_URL),
                                     ("--demo-saml-portal-url", demo_saml_portal_url, DEMO_SAML_PORTAL_URL)):
            if urlsplit(url).path or urlsplit(url).query:
                raise CommandError(_("%(option)s is where the demo portal runs, without a path: for example "
                                     "%(url)s.") % {"option": option, "url": example})
        try:
            notes = self.seed()
            try:
                portal, portal_notes = seed_demo_portal(demo_portal_url)
                saml_portal, saml_notes = seed_demo_saml_portal(demo_saml_portal_url)
            except ValidationError as exc:
                raise CommandError(_("The demo portal could not be registered: %(reason)s")
                                   % {"reason": " ".join(str(m) for m in exc.messages)})
        except DatabaseError as exc:
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CommandError(_("The database cannot be used (%(error)s). Is it running, and was `chave migrate` "
                                 "run?") % {"error": detail})
        except ValidationError as exc:
            raise CommandError(_("The demo citizen could not be set up: %(reason)s")
                               % {"reason": " ".join(str(m) for m in exc.messages)})
        for note in notes + portal_notes + saml_notes:
            self.stdout.write(note)
        self.print_credentials()
        self.print_app()
        self.print_portal(portal, demo_portal_url)
        self.print_saml_portal(saml_portal, demo_saml_portal_url)
        self.seed_card()
        self.seed_signing()
        self.seed_staff()

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
        # A demo tried many times hits the send caps for codes: start each run with none counted.
        throttle.forget(("code_send_per_key", str(key.pk)), ("code_send_per_destination", f"sms:{DEMO_PHONE}"),
                        ("code_send_per_destination", f"email:{DEMO_EMAIL}"))
        notes.append(_("Its limits on codes sent are cleared."))
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
        self.stdout.write(_("If wrong PINs lock the demo key or it was sent too many codes, run `chave seed_demo` "
                            "again: it unlocks it and clears its limits."))

    def seed_card(self) -> None:
        """The demo citizen's test Citizen Card (a SoftHSM token) and how to use it."""
        from chave.card.devcards import ensure_demo_card
        from chave.card.pki import PkiError
        from chave.card.tokens import CardError

        try:
            _created, label = ensure_demo_card(nic=DEMO_NIC, full_name=DEMO_FULL_NAME, given_name=DEMO_GIVEN_NAME,
                                               family_name=DEMO_FAMILY_NAME, pin=DEMO_CARD_PIN)
        except (CardError, PkiError, OSError) as exc:  # e.g. no SoftHSM: the rest of the demo works without it
            self.stdout.write(_("No demo Citizen Card (%(error)s).") % {"error": exc})
            return
        self.stdout.write("")
        self.stdout.write(_("Demo Citizen Card: %(label)s, card PIN %(pin)s") % {"label": label, "pin": DEMO_CARD_PIN})
        self.stdout.write(_("  The card agent runs beside Chave with `chave serve --with-card-agent` (make run does), "
                            "or alone with %(command)s; choose \"Sign in with the Citizen Card\".")
                          % {"command": ".venv/bin/chave card-agent"})

    def seed_signing(self) -> None:
        """The development signing hierarchy and HSM token, and signing active for the demo citizen."""
        import pkcs11

        from chave.signing import services as signing
        from chave.signing.devpki import ensure_dev_pki
        from chave.signing.hsm import HsmError

        citizen = demo_citizen()
        try:
            ensure_dev_pki()
            credential = signing.active_credential(citizen)
            if credential is not None and not _issued_by_current_ca(signing.certificate(credential)):
                # The development hierarchy was made again (a wiped token, an older layout).
                signing.deactivate_signing(citizen, by=SEEDED_BY, channel="cli")
                credential = None
            if credential is None:
                signing.activate_signing(citizen.key, DEMO_SIGNING_PIN, by=SEEDED_BY, channel="cli")
        except (HsmError, pkcs11.PKCS11Error, OSError, RuntimeError, ValidationError) as exc:
            # e.g. no SoftHSM on this machine: the rest of the demo works without signing
            self.stdout.write(_("No demo signing (%(error)s).") % {"error": exc})
            return
        base = settings.CHAVE_PUBLIC_URL.rstrip("/")
        self.stdout.write("")
        self.stdout.write(_("Digital signature: active for the demo citizen, signing PIN %(pin)s") % {
            "pin": DEMO_SIGNING_PIN})
        self.stdout.write(_("  Sign a PDF at %(url)s; check a signed PDF at %(check)s") % {
            "url": f"{base}/area/sign/", "check": f"{base}/validate/"})

    def seed_staff(self) -> None:
        """Counter staff for the tour, one per role, with a known password (development only)."""
        from chave.counter import services as counter

        for username, name, role, counter_name in DEMO_STAFF:
            counter.ensure_demo_staff(username, name=name, role=role, counter=counter_name,
                                      password=DEMO_STAFF_PASSWORD,
                                      nic=DEMO_CLERK["nic"] if username == DEMO_CLERK["username"] else "",
                                      admin=role == "rp-admin")
        base = settings.CHAVE_PUBLIC_URL.rstrip("/")
        self.stdout.write("")
        self.stdout.write(_("Counter back office: %(url)s, password %(password)s for %(users)s") % {
            "url": f"{base}/counter/login", "password": DEMO_STAFF_PASSWORD,
            "users": ", ".join(f"{u} ({r})" for u, _n, r, _c in DEMO_STAFF)})
        self.stdout.write(_("  The authenticator code: %(command)s") % {"command": ".venv/bin/chave staff totp balcao"})
        self.seed_clerk_card(f"{base}/counter/login/card")

    def seed_clerk_card(self, url: str) -> None:
        """The demo clerk's own test Citizen Card: staff sign in with it at the counter."""
        from chave.card.devcards import ensure_demo_card
        from chave.card.pki import PkiError
        from chave.card.tokens import CardError

        clerk = DEMO_CLERK
        try:
            _created, label = ensure_demo_card(nic=clerk["nic"], given_name=clerk["given_name"],
                                               family_name=clerk["family_name"], pin=DEMO_CARD_PIN,
                                               full_name=f'{clerk["given_name"]} {clerk["family_name"]}')
        except (CardError, PkiError, OSError) as exc:
            self.stdout.write(_("No demo staff card (%(error)s).") % {"error": exc})
            return
        self.stdout.write(_("  %(user)s also signs in with their own Citizen Card at %(url)s: card %(label)s, card PIN "
                            "%(pin)s") % {"user": clerk["username"], "url": url, "label": label, "pin": DEMO_CARD_PIN})

    def print_app(self) -> None:
        """How to open the Chave app (issue 12) as the demo citizen's phone."""
        base = settings.CHAVE_PUBLIC_URL.rstrip("/")
        self.stdout.write("")
        self.stdout.write(_("The Chave app (the demo citizen's phone): open %(url)s in a phone-sized window (Chromium: "
                            "F12, then the device toolbar) or on a phone") % {"url": f"{base}/app/"})
        self.stdout.write(_("  WebCrypto needs https or localhost: for a real Android phone on USB, run `adb reverse "
                            "tcp:%(port)s tcp:%(port)s` and open http://localhost:%(port)s/app/ there.")
                          % {"port": urlsplit(base).port or 80})
        self.stdout.write(_("  Pair it: personal area → %(area)s → \"Add the app to a device\"; type the pairing "
                            "code in the app, then the SMS code from the development outbox.")
                          % {"area": f"{base}/area/app/"})
        self.stdout.write(_("  Then sign in with \"Approve in the Chave app\", an offline code, or \"Sign in with "
                            "the Chave app\" (QR code) at %(url)s.") % {"url": f"{base}/login/"})

    def print_portal(self, portal: RelyingParty, url: str) -> None:
        self.stdout.write("")
        self.stdout.write(_("Demo portal: %(name)s at %(url)s (client_id %(client_id)s, %(state)s)") % {
            "name": portal.name, "url": f"{url}/", "client_id": portal.client_id,
            "state": portal.get_state_display()})
        self.stdout.write(_("  It runs beside Chave with `chave serve --with-demo-portal` (make run does), or alone "
                            "with `chave demo_portal`."))
        self.stdout.write(_("  Open it and choose \"Log in with Chave\" to go through PIN, code and consent."))

    def print_saml_portal(self, sp, url: str) -> None:
        self.stdout.write("")
        self.stdout.write(_("SAML demo portal: %(name)s at %(url)s (entity ID %(entity_id)s, %(state)s)") % {
            "name": sp.relying_party.name, "url": f"{url}/", "entity_id": sp.entity_id,
            "state": sp.relying_party.get_state_display()})
        self.stdout.write(_("  It runs beside Chave with `chave serve --with-demo-saml-portal` (make run does), or "
                            "alone with `chave demo_saml_portal`."))
        self.stdout.write(_("  Open it, pick the assurance level (2 e-mail code, 3 SMS code, 4 Citizen Card) and "
                            "choose \"Log in with Chave\": a signed SAML request with the autenticacao.gov "
                            "extensions; then \"Log out\" (SAML single logout)."))


def _issued_by_current_ca(cert) -> bool:
    from cryptography.exceptions import InvalidSignature

    from chave.signing import pki

    try:
        cert.verify_directly_issued_by(pki.material().ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
