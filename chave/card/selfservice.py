"""What a citizen does alone with their Citizen Card: register a key online, recover the PIN or
unlock the key.

**Registration** (the card has proved the NIC; identity data comes from the civil registry,
``chave.identity.registry``, as at a counter, since the certificate carries no birth date):
:func:`eligibility` → :func:`start_registration` (a pending key with the contacts, a code sent to
each; for a pending key left by an earlier attempt, the same key) → :func:`confirm_contact` for
each → :func:`finish_registration` (the chosen PIN; the key is active at once and the citizen is
told on their contacts). Refusals say what to do: unknown to the registry (a counter), under
the minimum age, document expired, a key already live (the personal area), a contact tied to
another live key.

**Recovery / unlock**: the card-verified holder of an active, locked or blocked key gets a code
on their best contact (the personal area's PIN-change code, ``chave.portal.services``), then
:func:`recover` sets the new PIN, resets the wrong-PIN count and unlocks the key through the key
lifecycle (``chave.identity.services``); they are told on their contacts.

Errors a citizen can act on are ``ValidationError`` with a code; nothing here stores a PIN or
a code.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from chave import clock, policy
from chave.audit import services as audit
from chave.codes import services as codes
from chave.identity import contacts
from chave.identity import services as identity
from chave.identity.models import Contact, ContactKind, DocType, Key, KeyStatus
from chave.identity.registry import DocumentRef, IdentityRecord, civil_registry
from chave.identity.validation import parse_email, parse_mobile
from chave.public import terms

from .services import citizen_key
from .verification import CardIdentity

CHANNEL = "web"


def _messages() -> dict:
    return {
        "unknown_document": _("The civil registry has no record of your Citizen Card, so the key cannot be "
                              "registered online. Please go to a counter (Citizen Spaces) with your card."),
        "too_young": _("The Digital Mobile Key is for people aged %(age)d or over. You can register it "
                       "online from your %(age)dth birthday.") % {"age": policy.get("citizen_min_age_years")},
        "document_expired": _("Your Citizen Card has expired. Renew it at a counter first, then register the key."),
        "already_registered": _("You already have a Digital Mobile Key. Manage it in your personal area: "
                                "you can change the PIN or the contacts there, or unlock the key."),
    }


def refusal(reason: str) -> ValidationError:
    return ValidationError(_messages()[reason], code=reason)


def document_of(card: CardIdentity) -> DocumentRef:
    return DocumentRef(DocType.CITIZEN_CARD, "PT", card.nic)


@dataclass(frozen=True)
class Eligibility:
    ok: bool
    reason: str = ""
    record: IdentityRecord | None = None
    pending_key: Key | None = None  # a registration left half-way, to continue

    @property
    def message(self) -> str:
        return str(_messages()[self.reason]) if self.reason else ""


def eligibility(card: CardIdentity) -> Eligibility:
    """May the card holder register a key online now? (Read only.)"""
    record = civil_registry().lookup(document_of(card))
    if record is None:
        return Eligibility(False, "unknown_document")
    today = clock.today()
    if identity.age_on(record.birth_date, today) < policy.get("citizen_min_age_years"):
        return Eligibility(False, "too_young", record)
    if record.document_expiry < today:
        return Eligibility(False, "document_expired", record)
    key = citizen_key(card)
    if key is not None and key.is_live:
        if key.status == KeyStatus.PENDING:
            return Eligibility(True, "", record, pending_key=key)
        return Eligibility(False, "already_registered", record)
    return Eligibility(True, "", record)


@dataclass(frozen=True)
class ContactToConfirm:
    kind: str
    value: str
    transaction: str
    issue: codes.IssueResult


def start_registration(card: CardIdentity, wanted: list[identity.ContactInput], *, language: str,
                       ip: str | None, terms_accepted: bool = False) -> tuple[Key, list[ContactToConfirm]]:
    """Record the pending key with ``wanted`` contacts (at least a mobile number or an e-mail) and
    send a contact-verification code to each. ``terms_accepted``: the citizen accepted the terms of
    use, recorded with the registration (required: without it, ``terms_not_accepted``).

    Raises ``ValidationError``: the eligibility refusals (codes as in :func:`eligibility`), and
    those of ``chave.identity.services.register_citizen`` (``no_contact``, ``mobile_taken``,
    ``email_taken``, a malformed contact).
    """
    if not terms_accepted:
        raise ValidationError(_("To register, read and accept the terms of use."), code="terms_not_accepted")
    decision = eligibility(card)
    if not decision.ok:
        raise refusal(decision.reason)
    key = decision.pending_key
    if key is None:
        # The key is pending until a contact is confirmed; its temporary PIN is never shown and
        # is replaced by the citizen's own PIN at the end.
        with transaction.atomic():  # the key and the citizen's acceptance of the terms, or neither
            key, _unused = identity.register_citizen(document_of(card), wanted, language=language, ip=ip,
                                                     channel=CHANNEL)
            terms.record_acceptance(key.citizen, channel=CHANNEL, ip=ip)
    elif not wanted:
        raise ValidationError(_("Give a mobile number or an e-mail address (or both)."), code="no_contact")
    sent = []
    for contact in wanted:
        value = _normalised(contact)
        started = contacts.request_verification(key, contact.kind, value, ip=ip, language=language)
        sent.append(ContactToConfirm(contact.kind, value, started.transaction, started.issue))
    audit.record("card.register.start", outcome="ok", citizen=key.citizen, channel=CHANNEL, ip=ip,
                 kinds=",".join(c.kind for c in wanted))
    return key, sent


def _normalised(contact: identity.ContactInput) -> str:
    return parse_mobile(contact.value) if contact.kind == ContactKind.MOBILE else parse_email(contact.value)


def resend_code(key: Key, kind: str, value: str, *, transaction_id: str, language: str,
                ip: str | None) -> contacts.VerificationStarted:
    """Send the contact's code again (cooldown and send limits apply)."""
    return contacts.request_verification(key, kind, value, ip=ip, language=language, transaction_id=transaction_id)


def confirm_contact(key: Key, kind: str, value: str, *, transaction_id: str, code: str,
                    ip: str | None) -> codes.VerifyResult:
    """Check a contact's code; when right the contact is verified (``chave.identity.contacts``)."""
    return contacts.confirm(key, kind, value, transaction_id=transaction_id, code=code, ip=ip)


def verified_contacts(key: Key) -> list[Contact]:
    return list(key.contacts.filter(verified_at__isnull=False, live=True))


def finish_registration(card: CardIdentity, key: Key, pin: str, *, ip: str | None) -> Key:
    """Set the citizen's PIN and activate the pending key (the citizen is told on their contacts).

    Raises ``ValidationError`` for a PIN the rules refuse, for a key that is not this card
    holder's pending key, or with no confirmed contact (nothing is changed then).
    """
    key = Key.objects.select_related("citizen").get(pk=key.pk)
    if key.citizen.doc_type != DocType.CITIZEN_CARD or key.citizen.doc_number != card.nic \
            or key.status != KeyStatus.PENDING:
        raise refusal("already_registered")
    if not verified_contacts(key):
        raise ValidationError(_("Confirm a contact before activating the key."), code="no_verified_contact")
    with transaction.atomic():
        identity.change_pin(key, pin, ip=ip, reason="online registration", channel=CHANNEL, notify=False)
        key.refresh_from_db()  # activate_key saves the whole row: it must carry the new PIN
        identity.activate_key(key, ip=ip, channel=CHANNEL)
        audit.record("card.register.finish", outcome="ok", citizen=key.citizen, channel=CHANNEL, ip=ip)
    key.refresh_from_db()
    return key


# --- Recovering the PIN / unlocking --------------------------------------------------------

RECOVERABLE = {KeyStatus.ACTIVE, KeyStatus.LOCKED, KeyStatus.BLOCKED}


def recoverable_key(card: CardIdentity) -> tuple[Key | None, str]:
    """The card holder's key that may get a new PIN, or None and why not (``no_key``, ``pending``)."""
    key = citizen_key(card)
    if key is None:
        return None, "no_key"
    status = key.effective_status(clock.now())
    if status == KeyStatus.PENDING:
        return None, "pending"
    if status not in RECOVERABLE:
        return None, "no_key"
    return key, ""


def recover(card: CardIdentity, key: Key, new_pin: str, *, ip: str | None) -> Key:
    """New PIN for the card holder's key; a locked or blocked key becomes active, the wrong-PIN
    count is reset; the citizen is told. Raises ``ValidationError`` (PIN rules, same PIN) and
    changes nothing then."""
    key = Key.objects.select_related("citizen").get(pk=key.pk)
    if key.citizen.doc_number != card.nic or key.status not in RECOVERABLE:
        raise ValidationError(_("This key cannot be recovered online. Please go to a counter."), code="not_recoverable")
    was = key.status
    with transaction.atomic():
        identity.change_pin(key, new_pin, ip=ip, reason="citizen card", channel=CHANNEL)
        if was in (KeyStatus.LOCKED, KeyStatus.BLOCKED):
            identity.unlock_key(key, ip=ip, by="citizen card", channel=CHANNEL)
        audit.record("card.recover", outcome="ok", citizen=key.citizen, channel=CHANNEL, ip=ip, was=was)
    key.refresh_from_db()
    return key
