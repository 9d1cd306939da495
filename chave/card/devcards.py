"""Test cards (development and tests only): ``chave dev-card issue``.

:func:`issue_card` makes a SoftHSM token (a blank card), has it generate the authentication key
pair, asks the test PKI for the certificate (NIC in the subject as the real card has it), writes
the certificate on the token, and records the holder's identity in the local civil records (the
certificate cannot carry the birth date; the registry is where registration reads it). With
``expired`` the certificate and the document are past their dates; with ``revoked`` the
certificate is revoked at once (the CRL and OCSP say so).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass

from cryptography.hazmat.primitives.serialization import Encoding
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.utils.translation import gettext as _

from chave import clock
from chave.identity.models import DocType
from chave.identity.registry import DocumentRef, IdentityRecord, LocalRecords
from chave.identity.validation import parse_nic

from . import tokens
from .pki import DevPki

CARD_YEARS = 5
ADULT_BIRTH_DATE = dt.date(1990, 1, 1)


def refuse_in_production(command: str) -> None:
    if settings.IS_PRODUCTION:
        raise ImproperlyConfigured(
            _("%(command)s makes test cards and a test PKI: it is refused in production.") % {"command": command}
        )


def token_label(nic: str) -> str:
    """A label for a new test card: the NIC and a short random part (several cards may share a NIC)."""
    return f"CC {nic} {secrets.token_hex(2)}"


@dataclass(frozen=True)
class IssuedCard:
    nic: str
    full_name: str
    token_label: str
    pin: str
    certificate_serial: str
    not_after: dt.datetime
    revoked: bool
    certificate_pem: str = ""


def split_name(full_name: str) -> tuple[str, str]:
    parts = full_name.split()
    if len(parts) < 2:
        raise ValidationError(_("Give the full name: given name(s) and family name(s)."), code="name")
    return parts[0], " ".join(parts[1:])


def issue_card(
    *, nic: str, full_name: str, given_name: str = "", family_name: str = "", birth_date: dt.date | None = None,
    pin: str | None = None, expired: bool = False, revoked: bool = False, base_url: str | None = None,
    pki: DevPki | None = None, record: bool = True,
) -> IssuedCard:
    """Make a test card for ``nic``; see the module docstring. Raises ``ValidationError`` for a
    bad NIC or name, :class:`chave.card.pki.PkiError` without a test PKI,
    :class:`chave.card.tokens.CardError` when SoftHSM fails."""
    refuse_in_production("chave dev-card")
    nic = parse_nic(nic)
    if not (given_name and family_name):
        given_name, family_name = split_name(full_name)
    pin = pin or f"{secrets.randbelow(10**4):04d}"
    pki = pki or DevPki()
    now = clock.now()
    if expired:
        not_before, not_after = now - dt.timedelta(days=365 * CARD_YEARS), now - dt.timedelta(days=1)
    else:
        not_before, not_after = now - dt.timedelta(minutes=5), now + dt.timedelta(days=365 * CARD_YEARS)
    pki.sub_ca  # raises PkiError when there is no PKI, before a token is made
    label = token_label(nic)
    tokens.create_token(label, pin=pin, so_pin=secrets.token_hex(8))
    public_key = tokens.generate_key(label, pin=pin)
    issued = pki.issue_card_certificate(
        public_key, nic=nic, given_name=given_name, family_name=family_name, full_name=full_name,
        not_before=not_before, not_after=not_after, base_url=base_url or settings.CHAVE_PUBLIC_URL,
    )
    tokens.store_certificate(label, issued.certificate, pin=pin)
    if revoked:
        pki.revoke(issued.certificate.serial_number, at=now)
    if record:
        LocalRecords().store(IdentityRecord(
            doc=DocumentRef(DocType.CITIZEN_CARD, "PT", nic), full_name=full_name, given_name=given_name,
            family_name=family_name, birth_date=birth_date or ADULT_BIRTH_DATE,
            document_expiry=not_after.date(),
        ))
    return IssuedCard(nic, full_name, label, pin, issued.serial_hex, not_after, revoked,
                      issued.certificate.public_bytes(Encoding.PEM).decode())


def _dev_card(*args: str) -> str:
    """Run ``chave dev-card`` in its own process: PKCS#11 (SoftHSM) is loaded once per process
    with one configuration, so cards are never touched in the web service's or another app's
    process (the signing HSM is SoftHSM too)."""
    done = subprocess.run([sys.executable, "-m", "chave.cli", "dev-card", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "CHAVE_CARD_DEV_DIR": str(settings.CHAVE_CARD_DEV_DIR)})
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip()
        raise tokens.CardError("failed", output.splitlines()[-1] if output else "chave dev-card failed")
    return done.stdout


def ensure_demo_card(*, nic: str, full_name: str, given_name: str, family_name: str, pin: str) -> tuple[bool, str]:
    """For ``make run``: the test PKI and one test card for the demo citizen, unless they exist
    (the demo identity is recorded by the caller). Returns (created, token label); idempotent.
    Raises :class:`chave.card.tokens.CardError` when ``chave dev-card`` fails."""
    DevPki().init(now=clock.now())
    prefix = f"CC {nic} "
    for card in json.loads(_dev_card("list", "--json")):
        if card["token_label"].startswith(prefix):
            return False, card["token_label"]
    made = json.loads(_dev_card("issue", "--nic", nic, "--name", full_name, "--given-name", given_name,
                                "--family-name", family_name, "--pin", pin, "--no-record", "--json"))
    return True, made["token_label"]
