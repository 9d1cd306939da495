"""Registering a citizen at the counter, from the clerk's form to an active key.

1. :func:`start` (the clerk, with the document checked): a Portuguese citizen by NIC (identity
   from the civil registry), or a foreigner by document type, issuing country and number, with
   the identity data and NIF read from the document (recorded in the local civil records). The
   key is created ``pending`` with its contacts unconfirmed; its generated PIN is thrown away
   unused (the citizen chooses one, or a letter brings a new one).
2. Each contact is confirmed by a code the citizen types on the desk's citizen screen
   (:func:`send_code`, then :func:`chave.counter.screen.submit_code`).
3. The PIN: chosen by the citizen on the citizen screen (:func:`ask_pin`, then
   :func:`chave.counter.screen.submit_pin`), or sent by letter at completion.
4. :func:`complete`: every contact confirmed and the PIN chosen (or the letter issued) → the key
   is activated and the citizen told.

The registration is one :class:`~.models.CounterAction` (kind ``register``), which a supervisor
may reverse within the day (the key is cancelled).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from chave import clock
from chave.identity import contacts
from chave.identity import services as identity
from chave.identity.models import DocType
from chave.identity.registry import DocumentRef, IdentityRecord, LocalRecords

from . import letters, screen
from .models import ActionKind, CitizenTurn, CounterRegistration, Staff, TurnKind
from .services import CHANNEL, Presented, record_action

REGISTRATION_REASON_DEFAULT = "registration at the counter"


def start(staff: Staff, *, doc: DocumentRef, contacts_given: list[identity.ContactInput], pin_by: str,
          reason: str, record: IdentityRecord | None = None, address: str = "", language: str = "pt-pt",
          terms_accepted: bool = False, ip: str | None = None) -> CounterRegistration:
    """Record the checked document and create the pending key (see the module's steps).

    ``record`` is the foreigner's identity as read from their document (stored in the local civil
    records); a Portuguese citizen's comes from the civil registry. Raises ``ValidationError`` as
    :func:`chave.identity.services.register_citizen` does, and for a missing NIF (foreigners), a
    bad address (letter), a short reason, or terms of use the citizen has not accepted (their
    acceptance is recorded with the key, as online).
    """
    from chave import policy

    reason = " ".join((reason or "").split())
    if len(reason) < policy.get("counter_reason_min_length"):
        raise ValidationError(_("Say why, in a few words."), code="reason_short")
    if not terms_accepted:
        raise ValidationError(_("The citizen must accept the terms of use."), code="terms_not_accepted")
    if pin_by not in CounterRegistration.PinBy.values:
        raise ValidationError(_("Choose how the citizen gets their PIN."), code="pin_by_invalid")
    if pin_by == CounterRegistration.PinBy.LETTER:
        address = letters.check_address("-", address)[1]
    with transaction.atomic():
        if doc.doc_type != DocType.CITIZEN_CARD:
            if record is None or not record.nif:
                raise ValidationError(_("A foreigner's registration needs the NIF."), code="nif_required")
            LocalRecords().store(record)
        key, unused_pin = identity.register_citizen(doc, contacts_given, language=language, ip=ip, channel=CHANNEL)
        del unused_pin  # never shown: the citizen chooses a PIN, or a letter brings a new one
        from chave.public.terms import record_acceptance

        record_acceptance(key.citizen, channel=CHANNEL, ip=ip)
        action = record_action(staff, ActionKind.REGISTER, key.citizen, key,
                               Presented(doc.doc_type, doc.doc_country, doc.doc_number, reason), ip=ip, delivery=pin_by)
        return CounterRegistration.objects.create(action=action, key=key, pin_by=pin_by, address=address)


def send_code(staff: Staff, registration: CounterRegistration, kind: str, *, ip: str | None = None) -> CitizenTurn:
    """Send a code to the registration's ``kind`` of contact and ask for it on the citizen screen.
    Raises ``ValidationError`` without a paired screen or when the code cannot be sent now."""
    screen.require_screen(staff)
    contact = registration.key.contacts.get(kind=kind)
    started = contacts.request_verification(registration.key, kind, contact.value, ip=ip)
    if not started.sent:
        raise ValidationError(_("The code could not be sent now (%(reason)s). Try again in a moment."),
                              code="not_sent", params={"reason": started.issue.reason})
    return screen.open_turn(staff, registration.key, TurnKind.CODE, contact_kind=kind, contact_value=contact.value,
                            transaction_id=started.transaction)


def ask_pin(staff: Staff, registration: CounterRegistration) -> CitizenTurn:
    """Ask the citizen to choose their PIN on the citizen screen."""
    if registration.pin_by != CounterRegistration.PinBy.SCREEN:
        raise ValidationError(_("This citizen receives their PIN by letter."), code="pin_by_letter")
    return screen.open_turn(staff, registration.key, TurnKind.PIN)


def pin_chosen(turn: CitizenTurn) -> None:
    CounterRegistration.objects.filter(key=turn.key, pin_chosen_at__isnull=True).update(pin_chosen_at=clock.now())


def missing(registration: CounterRegistration) -> list[str]:
    """What is still to do: ``mobile``/``email`` (to confirm) and ``pin`` (to choose)."""
    todo = list(registration.key.contacts.filter(verified_at__isnull=True).values_list("kind", flat=True))
    if registration.pin_by == CounterRegistration.PinBy.SCREEN and registration.pin_chosen_at is None:
        todo.append("pin")
    return todo


def complete(staff: Staff, registration: CounterRegistration, *, ip: str | None = None) -> CounterRegistration:
    """Activate the key (and, for a PIN by letter, issue the letter). Raises ``ValidationError``
    while something is :func:`missing`, or when it is completed already."""
    with transaction.atomic():
        registration = CounterRegistration.objects.select_for_update().select_related("key__citizen").get(
            pk=registration.pk)
        if registration.completed_at is not None:
            raise ValidationError(_("This registration is complete already."), code="complete")
        if missing(registration):
            raise ValidationError(_("Confirm every contact and the PIN first."), code="incomplete")
        key = registration.key
        if registration.pin_by == CounterRegistration.PinBy.LETTER:
            letters.send_letter(staff, key, address=registration.address, ip=ip)
        identity.activate_key(key, ip=ip, channel=CHANNEL)
        registration.completed_at = clock.now()
        registration.save(update_fields=["completed_at"])
    return registration

