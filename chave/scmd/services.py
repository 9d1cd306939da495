"""SCMD integrators: made, rotated, disabled and authenticated (HTTP Basic).

Every write goes through here (the CLI ``chave signing integrator …`` calls these). Secrets are
returned once and stored only as a hash; audit events name the integrator, never the secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from chave import clock
from chave.audit import services as audit

from .models import Integrator

MAX_HEADER = 512
# Compared against when the username is unknown, so that both cases take the same time.
_NOBODY = hashlib.sha256(b"chave-scmd\x00nobody").hexdigest()


def _hash(secret: str) -> str:
    return hashlib.sha256(b"chave-scmd\x00" + secret.encode()).hexdigest()


@dataclass(frozen=True)
class Credentials:
    integrator: Integrator
    password: str  # shown once


def add_integrator(name: str, *, application_id: str | None = None, by: str) -> Credentials:
    """A new SCMD integrator with its Basic credentials and ``ApplicationId`` (a new UUID unless
    given). Raises ``ValidationError`` for an empty name or an ApplicationId already taken."""
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise ValidationError(_("Give the integrator's name (at most 200 characters)."), code="name")
    application_id = (application_id or str(uuid.uuid4())).strip()
    if not application_id or len(application_id) > 100 or not application_id.isprintable():
        raise ValidationError(_("The ApplicationId is 1 to 100 printable characters."), code="application_id")
    if Integrator.objects.filter(application_id=application_id).exists():
        raise ValidationError(_("This ApplicationId belongs to another integrator."), code="application_id_taken")
    password = secrets.token_urlsafe(32)
    with transaction.atomic():
        integrator = Integrator.objects.create(
            name=name, username="scmd-" + secrets.token_hex(8), secret_hash=_hash(password),
            application_id=application_id, created_at=clock.now())
        audit.record("scmd.integrator_add", outcome="ok", by=by, integrator=integrator.username, name=name)
    return Credentials(integrator, password)


def rotate_secret(integrator: Integrator, *, by: str) -> Credentials:
    """A new password for the integrator; the old one stops working at once."""
    password = secrets.token_urlsafe(32)
    with transaction.atomic():
        Integrator.objects.filter(pk=integrator.pk).update(secret_hash=_hash(password), rotated_at=clock.now())
        audit.record("scmd.integrator_rotate", outcome="ok", by=by, integrator=integrator.username)
    integrator.refresh_from_db()
    return Credentials(integrator, password)


def set_active(integrator: Integrator, active: bool, *, by: str) -> None:
    with transaction.atomic():
        Integrator.objects.filter(pk=integrator.pk).update(active=active)
        audit.record("scmd.integrator_enable" if active else "scmd.integrator_disable", outcome="ok", by=by,
                     integrator=integrator.username)
    integrator.refresh_from_db()


def find(username: str) -> Integrator | None:
    return Integrator.objects.filter(username=username).first()


def authenticate(header: str) -> Integrator | None:
    """The active integrator whose Basic credentials ``header`` (``Authorization``) carries."""
    scheme, _sep, value = (header or "").partition(" ")
    if scheme.lower() != "basic" or not value or len(header) > MAX_HEADER:
        return None
    try:
        username, _colon, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, ValueError):
        return None
    integrator = Integrator.objects.filter(username=username[:64]).first() if username else None
    matches = hmac.compare_digest(integrator.secret_hash if integrator else _NOBODY, _hash(password))
    return integrator if integrator is not None and matches and integrator.active else None


def owns(integrator: Integrator, application_id: bytes | None) -> bool:
    """Whether the call's ``ApplicationId`` is the integrator's own."""
    return application_id is not None and hmac.compare_digest(integrator.application_id.encode(), application_id)
