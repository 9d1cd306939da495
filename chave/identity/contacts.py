"""Verifying a contact (mobile, e-mail, X account) with a one-time code sent to it.

A contact is used for codes only once verified. :func:`request_verification` sends a code to
the contact (new, or replacing the key's current one of that kind) under a fresh transaction id
that is bound to the contact's value; :func:`confirm` checks the code and then verifies the
contact, or replaces the old one (which is told of the change). The personal area, the counter
and online registration all verify contacts through here.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext_lazy as _

from chave import clock
from chave.audit import services as audit
from chave.codes import services as codes
from chave.codes.models import Purpose
from chave.delivery import messages as message_texts
from chave.delivery import services as delivery

from .models import Contact, ContactKind, Key
from .services import ContactInput, _check_contacts_free
from .signals import contact_changed

CHANNEL_OF_KIND = {ContactKind.MOBILE: "sms", ContactKind.EMAIL: "email", ContactKind.X: "x"}


@dataclass(frozen=True)
class VerificationStarted:
    sent: bool
    transaction: str  # keep it (e.g. in the session) to confirm the code later
    issue: codes.IssueResult


def _bind(key: Key, kind: str, value: str, nonce: str) -> str:
    digest = hashlib.sha256(f"{key.pk}\x00{kind}\x00{value}".encode()).hexdigest()[:20]
    return f"contact-{digest}-{nonce}"


def request_verification(
    key: Key, kind: str, value: str, *, ip: str | None = None, language: str | None = None, transaction_id: str = ""
) -> VerificationStarted:
    """Send a contact-verification code to ``value`` (already normalised by ``validation``).

    Pass back ``transaction_id`` to resend within the same verification (cooldown and send
    limits then apply). Raises ``ValidationError`` when the key is not live or the contact
    belongs to another live key.
    """
    if not key.is_live:
        raise ValidationError(_("This Digital Mobile Key is cancelled or expired."), code="key_not_live")
    _check_contacts_free([ContactInput(kind, value)], except_key=key)
    if transaction_id and transaction_id.startswith(_bind(key, kind, value, "")):
        tx = transaction_id
    else:
        tx = _bind(key, kind, value, secrets.token_hex(8))
    result = codes.issue_code(
        key, purpose=Purpose.CONTACT, transaction=tx, channel=CHANNEL_OF_KIND[kind], destination=value, ip=ip,
        language=language,
    )
    return VerificationStarted(result.sent, tx, result)


def confirm(key: Key, kind: str, value: str, *, transaction_id: str, code: str, ip: str | None = None) -> codes.VerifyResult:
    """Check the code for this contact; when right, the contact is verified (or replaces the old).

    Returns the code check's result; raises ``ValidationError`` when the transaction is not this
    contact's, or when another live key took the contact meanwhile.
    """
    if not transaction_id.startswith(_bind(key, kind, value, "")):
        raise ValidationError(_("This code was not sent to this contact. Ask for a new code."), code="wrong_contact")
    result = codes.verify_code(purpose=Purpose.CONTACT, transaction=transaction_id, submitted=code, ip=ip)
    if not result.ok:
        return result
    now = clock.now()
    old_value = None
    try:
        with transaction.atomic():
            key = Key.locked(key.pk)
            _check_contacts_free([ContactInput(kind, value)], except_key=key)
            contact = key.contacts.filter(kind=kind).first()
            if contact is None:
                Contact.objects.create(key=key, kind=kind, value=value, verified_at=now, created_at=now,
                                       live=key.is_live)
            else:
                if contact.value != value:
                    old_value = contact.value
                contact.value, contact.verified_at = value, now
                contact.save(update_fields=["value", "verified_at"])
            audit.record("contact.change" if old_value else "contact.verify", outcome="ok", citizen=key.citizen,
                         channel=CHANNEL_OF_KIND[kind], ip=ip)
            if old_value:
                text = message_texts.notice_message("contact_changed", language=key.citizen.language)
                delivery.queue_message(channel=CHANNEL_OF_KIND[kind], destination=old_value, subject=text.subject,
                                       body=text.body, redacted=text.redacted, citizen=key.citizen)
                contact_changed.send(sender=confirm, key=key, kind=kind, by="citizen")
    except IntegrityError:
        raise ValidationError(_("This contact is already tied to another Digital Mobile Key."), code="contact_taken")
    return result
