"""Activation letters: a temporary PIN sent by post (or handed over sealed at the counter).

Life of a letter and of its PIN (also in README.md):

1. :func:`issue_new_pin` (a clerk, with the document presented and a reason) gives the key a new
   temporary PIN (``identity.set_temporary_pin``: changed at first use, valid
   ``temporary_pin_days``), and writes the letter with the PIN **sealed** (Fernet under
   ``CHAVE_MESSAGE_KEY``, purpose ``letter-pin``) and its production task, in one transaction.
2. The worker runs :func:`produce`: it renders the PDF, stores it **sealed** (purpose
   ``letter-pdf``) and wipes the sealed PIN in the same transaction. From then on the PIN exists in
   clear only inside the (sealed) PDF; the key keeps only its Argon2id hash.
3. The mail room gathers ready letters into a :class:`~.models.PrintBatch` (:func:`make_batch`),
   downloads it as one PDF (:func:`batch_pdf`, audited) and marks it posted (:func:`mark_posted`),
   which **deletes** the sealed PDFs.
   A PIN **handed over sealed** (``delivery="counter"``) is printed by the job straight to the
   counter's PIN-mailer printer (:mod:`.printers`) and never stored; the clerk records
   :func:`hand_over` once the citizen has the sealed mailer.
4. :func:`cancel_letter` (lost in the post; or a supervisor reversing the new PIN) voids the PIN
   on the key, unless the citizen has changed it already, and deletes whatever is still sealed.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import secrets

from cryptography.fernet import InvalidToken
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from chave import clock, policy, sealing
from chave.audit import services as audit
from chave.delivery import services as delivery_service
from chave.identity import services as identity
from chave.identity.models import Key

from . import pdf, printers
from .models import ActionKind, Letter, LetterDelivery, LetterStatus, PrintBatch, Staff
from .roles import Role
from .services import CHANNEL, Presented, by, check_presented, record_action


def _seal(text: str, purpose: str) -> str:
    return sealing.seal(text, secret=settings.CHAVE_MESSAGE_KEY, purpose=purpose)


def _unseal(token: str, purpose: str) -> str:
    return sealing.unseal(token, secret=settings.CHAVE_MESSAGE_KEY, purpose=purpose)


PREVIOUS_PIN = "letter-previous-pin"


def _reference() -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read over the phone
    return "CH-" + "".join(secrets.choice(alphabet) for _ in range(8))


def check_address(recipient: str, address: str) -> tuple[str, str]:
    recipient = " ".join((recipient or "").split())
    lines = [" ".join(line.split()) for line in (address or "").splitlines() if line.strip()]
    if not recipient or len(lines) < 2 or len(lines) > 5 or any(len(line) > 60 for line in lines):
        raise ValidationError(_("Give the postal address in two to five lines of at most 60 characters."),
                              code="address_invalid")
    return recipient, "\n".join(lines)


def send_letter(staff: Staff, key: Key, *, address: str = "", delivery: str = LetterDelivery.POST,
                ip: str | None = None) -> Letter:
    """Give ``key`` a new temporary PIN and queue the letter that brings it: by post to ``address``
    (the recipient is the citizen), or printed on the counter's PIN-mailer printer to be handed
    over sealed (``delivery="counter"``; no address). The PIN goes sealed to the production job,
    never to the caller. Raises ``ValidationError`` for a bad address, a counter without a printer
    or a key that is not live."""
    if delivery == LetterDelivery.COUNTER:
        if printers.counter_printer() is None:
            raise ValidationError(_("This service has no PIN-mailer printer: send the PIN by post."),
                                  code="no_printer")
        recipient, address = key.citizen.full_name, f"{pdf.both(pdf.HANDED_OVER_LABEL)}:\n{staff.counter}"
    elif delivery == LetterDelivery.POST:
        recipient, address = check_address(key.citizen.full_name, address)
    else:
        raise ValidationError(_("Choose how the PIN is delivered."), code="delivery_invalid")
    with transaction.atomic():
        before = Key.objects.select_for_update().get(pk=key.pk)
        pin, digest = identity.set_temporary_pin(key, by=by(staff), ip=ip, channel=CHANNEL)
        key.refresh_from_db()
        letter = Letter.objects.create(
            reference=_reference(), citizen=key.citizen, key=key, recipient=recipient, address=address,
            delivery=delivery, counter=staff.counter, language=key.citizen.language,
            pin_sealed=_seal(pin, "letter-pin"), pin_hash_digest=digest, valid_until=key.pin_expires_at,
            created_at=clock.now(),
            previous_pin_sealed=_seal(before.pin_hash, PREVIOUS_PIN) if before.pin_hash else "",
            previous_pin_temporary=before.pin_is_temporary, previous_pin_expires_at=before.pin_expires_at,
        )
        del pin
        from .tasks import produce_letter

        produce_letter.enqueue(str(letter.pk))
    return letter


def issue_new_pin(staff: Staff, key: Key, presented: Presented, *, address: str = "",
                  delivery: str = LetterDelivery.POST, ip: str | None = None) -> Letter:
    """A new temporary PIN for ``key``, by letter or handed over sealed (:func:`send_letter`), as a
    counter action.

    Raises ``ValidationError`` for a short reason, a document that is not the citizen's, a bad
    address, no printer, or a key that is not live. The clerk never sees the PIN.
    """
    presented = check_presented(key.citizen, presented)
    with transaction.atomic():
        letter = send_letter(staff, key, address=address, delivery=delivery, ip=ip)
        record_action(staff, ActionKind.NEW_PIN, key.citizen, key, presented, ip=ip, letter=letter.reference,
                      delivery=delivery)
        delivery_service.notify(key.citizen, "pin_by_letter")
    return letter


def _printer():
    printer = printers.counter_printer()
    if printer is None:
        raise printers.PrinterError("no PIN-mailer printer is configured")
    return printer


def _print_failed(letter: Letter, error: str) -> str:
    """The counter's printer refused the mailer: try again after the next wait of
    ``counter_print_backoff_seconds``, or — when they are used up — mark the letter "printing
    failed" for the clerk (print again, or cancel). The sealed PIN stays until then."""
    waits = policy.get("counter_print_backoff_seconds")
    letter.print_attempts += 1
    letter.print_error = error[:200]
    if letter.print_attempts <= len(waits):
        letter.next_print_at = clock.now() + dt.timedelta(seconds=waits[letter.print_attempts - 1])
        from .tasks import produce_letter

        produce_letter.using(run_after=letter.next_print_at).enqueue(str(letter.pk))
    else:
        letter.status, letter.next_print_at = LetterStatus.PRINT_FAILED, None
    letter.save(update_fields=["print_attempts", "print_error", "next_print_at", "status"])
    audit.record("letter.print", outcome="failed" if letter.status == LetterStatus.PRINT_FAILED else "retry",
                 citizen=letter.citizen, channel=CHANNEL, letter=letter.reference, attempts=letter.print_attempts)
    return letter.status


def print_again(staff: Staff, letter: Letter, *, ip: str | None = None) -> None:
    """A clerk sends a mailer whose printing failed to the counter's printer again (after fixing
    it). Raises ``ValidationError`` unless the letter's printing failed."""
    with transaction.atomic():
        updated = Letter.objects.filter(pk=letter.pk, status=LetterStatus.PRINT_FAILED).update(
            status=LetterStatus.QUEUED, print_attempts=0, next_print_at=None)
        if not updated:
            raise ValidationError(_("This PIN mailer is not waiting to be printed again."), code="not_failed")
        from .tasks import produce_letter

        produce_letter.enqueue(str(letter.pk))
        audit.record("letter.print_again", outcome="ok", citizen=letter.citizen, channel=CHANNEL, ip=ip,
                     letter=letter.reference, staff=staff.username, counter=staff.counter)


def produce(letter_id: str) -> str:
    """Render a queued letter's PDF, seal it (by post) or print it at its counter (handed over),
    and wipe the sealed PIN; returns the letter's status. A printer failure leaves the letter
    queued with another try scheduled (:func:`_print_failed`).

    Idempotent: a letter that is not ``queued`` (produced already, cancelled) is left as it is; two
    workers cannot both produce it (row lock; SQLite's IMMEDIATE transactions serialise writers).
    """
    with transaction.atomic():
        letter = Letter.objects.select_for_update().filter(pk=letter_id).first()
        if letter is None:
            return "missing"
        if letter.status != LetterStatus.QUEUED or not letter.pin_sealed:
            return letter.status
        try:
            pin = _unseal(letter.pin_sealed, "letter-pin")
        except InvalidToken:
            # The message key changed since: this PIN can never be printed; void it.
            _void(letter, by="letter-unreadable")
            return letter.status
        document = pdf.render(pdf.LetterContent(
            reference=letter.reference, recipient=letter.recipient, address=letter.address, pin=pin,
            valid_until=letter.valid_until, issued_on=clock.today(),
        ))
        del pin
        if letter.delivery == LetterDelivery.COUNTER:
            # Straight to the counter's PIN-mailer printer; a failure schedules another try.
            try:
                _printer().print_pdf(letter.counter, letter.reference, document)
            except printers.PrinterError as error:
                return _print_failed(letter, str(error))
            letter.status = LetterStatus.PRINTED
        else:
            letter.pdf_sealed = _seal(base64.b64encode(document).decode(), "letter-pdf")
            letter.status = LetterStatus.READY
        letter.pin_sealed, letter.produced_at = "", clock.now()
        letter.save(update_fields=["pdf_sealed", "pin_sealed", "status", "produced_at"])
        audit.record("letter.produce", outcome="ok", citizen=letter.citizen, channel=CHANNEL,
                     letter=letter.reference)
        return letter.status


def _require(staff: Staff, *roles: str) -> None:
    if staff.role not in roles:
        raise PermissionError(f"{staff.role} may not do this")


def make_batch(staff: Staff) -> PrintBatch | None:
    """Gather every ready letter into a new print batch (mail room). None when there are none."""
    _require(staff, Role.MAILROOM)
    with transaction.atomic():
        ready = list(Letter.objects.select_for_update().filter(status=LetterStatus.READY, batch__isnull=True))
        if not ready:
            return None
        batch = PrintBatch.objects.create(created_at=clock.now(), created_by=staff)
        Letter.objects.filter(pk__in=[letter.pk for letter in ready]).update(batch=batch, status=LetterStatus.BATCHED)
        audit.record("letter.batch", outcome="ok", channel=CHANNEL, staff=staff.username, batch=batch.pk,
                     letters=len(ready))
    return batch


def batch_pdf(staff: Staff, batch: PrintBatch) -> bytes:
    """The batch's letters as one PDF to print (audited: it shows PINs). Raises ``ValidationError``
    once the batch is posted (its PDFs are deleted)."""
    from pypdf import PdfReader, PdfWriter

    _require(staff, Role.MAILROOM)
    letters = list(batch.letters.filter(status=LetterStatus.BATCHED).order_by("created_at"))
    if batch.posted_at is not None or not letters:
        raise ValidationError(_("This batch has been posted: its letters are no longer kept."), code="posted")
    writer = PdfWriter()
    for letter in letters:
        writer.append(PdfReader(io.BytesIO(base64.b64decode(_unseal(letter.pdf_sealed, "letter-pdf")))))
    out = io.BytesIO()
    writer.write(out)
    PrintBatch.objects.filter(pk=batch.pk).update(downloads=batch.downloads + 1)
    audit.record("letter.batch_download", outcome="ok", channel=CHANNEL, staff=staff.username, batch=batch.pk,
                 letters=len(letters))
    return out.getvalue()


def mark_posted(staff: Staff, batch: PrintBatch) -> int:
    """The batch went to the post: its letters are ``posted`` and their PDFs deleted. Idempotent;
    returns how many letters were marked now."""
    _require(staff, Role.MAILROOM)
    now = clock.now()
    with transaction.atomic():
        batch = PrintBatch.objects.select_for_update().get(pk=batch.pk)
        count = Letter.objects.filter(batch=batch, status=LetterStatus.BATCHED).update(
            status=LetterStatus.POSTED, posted_at=now, pdf_sealed="")
        if batch.posted_at is None:
            batch.posted_at, batch.posted_by = now, staff
            batch.save(update_fields=["posted_at", "posted_by"])
            audit.record("letter.posted", outcome="ok", channel=CHANNEL, staff=staff.username, batch=batch.pk,
                         letters=count)
    return count


def hand_over(staff: Staff, letter: Letter, *, ip: str | None = None) -> None:
    """The clerk handed the sealed PIN mailer to the citizen. Raises ``ValidationError`` unless the
    letter was printed at the counter and not handed over yet."""
    with transaction.atomic():
        if not Letter.objects.filter(pk=letter.pk, status=LetterStatus.PRINTED).update(status=LetterStatus.HANDED,
                                                                                     posted_at=clock.now()):
            raise ValidationError(_("This PIN mailer is not waiting to be handed over."), code="not_printed")
        audit.record("letter.handed", outcome="ok", citizen=letter.citizen, channel=CHANNEL, ip=ip,
                     letter=letter.reference, staff=staff.username, counter=staff.counter)


def _void(letter: Letter, *, by: str, ip: str | None = None) -> bool:
    """Inside a transaction holding the letter: cancel it, delete its secrets, void its PIN."""
    letter.status, letter.cancelled_at, letter.pin_sealed, letter.pdf_sealed, letter.previous_pin_sealed = (
        LetterStatus.CANCELLED, clock.now(), "", "", "")
    letter.save(update_fields=["status", "cancelled_at", "pin_sealed", "pdf_sealed", "previous_pin_sealed"])
    voided = identity.void_temporary_pin(letter.key, digest=letter.pin_hash_digest, by=by, ip=ip, channel=CHANNEL)
    audit.record("letter.cancel", outcome="ok", citizen=letter.citizen, channel=CHANNEL, ip=ip,
                 letter=letter.reference, by=by, pin_voided=voided)
    return voided


def cancel_letter(letter: Letter, staff: Staff, *, reason: str, presented: Presented | None = None,
                  ip: str | None = None, record: bool = True) -> bool:
    """Cancel a letter (lost in the post): its PIN no longer opens the key (unless the citizen has
    replaced it already) and nothing of it is kept. Returns whether the PIN was voided.

    With ``record`` a counter action is written (the citizen is at the desk: ``presented`` is
    required); a supervisor's reversal records its own. Raises ``ValidationError`` for a letter
    cancelled already, or a short reason.
    """
    if record:
        presented = check_presented(letter.citizen, Presented(presented.doc_type, presented.doc_country,
                                                              presented.doc_number, reason))
    with transaction.atomic():
        letter = Letter.objects.select_for_update().select_related("key", "citizen").get(pk=letter.pk)
        if letter.status == LetterStatus.CANCELLED:
            raise ValidationError(_("This letter is cancelled already."), code="already_cancelled")
        voided = _void(letter, by=by(staff), ip=ip)
        if record:
            record_action(staff, ActionKind.LETTER_CANCEL, letter.citizen, letter.key, presented, ip=ip,
                          letter=letter.reference)
    return voided



def reverse_new_pin(letter: Letter, supervisor: Staff, *, reason: str, ip: str | None = None) -> bool:
    """A supervisor reverses a new PIN by letter (inside :func:`.services.reverse`'s transaction):
    the letter is cancelled and its PIN voided; the PIN the key had before comes back, when it
    still can (the key has no other PIN since, and a temporary one has not expired). The citizen is
    told either way: that their previous PIN works again, or that they need a new one (unless the
    letter's PIN was replaced by the citizen's own already: then nothing changes for them). Returns
    whether the previous PIN came back."""
    letter = Letter.objects.select_for_update().select_related("key", "citizen").get(pk=letter.pk)
    previous = _unseal(letter.previous_pin_sealed, PREVIOUS_PIN) if letter.previous_pin_sealed else ""
    if not cancel_letter(letter, supervisor, reason=reason, ip=ip, record=False):
        return False  # the citizen had replaced that PIN with their own already: nothing changes for them
    restored = bool(previous) and identity.restore_pin(
        letter.key, pin_hash=previous, temporary=letter.previous_pin_temporary,
        expires_at=letter.previous_pin_expires_at, by=by(supervisor), ip=ip, channel=CHANNEL)
    delivery_service.notify(letter.citizen, "pin_letter_reversed_previous" if restored else "pin_letter_reversed")
    return restored


def forget_previous_pins() -> int:
    """Wipe the previous PINs kept for a reversal once that can no longer happen (letters of an
    earlier Lisbon day). Returns how many."""
    from django.utils import timezone

    start = timezone.make_aware(dt.datetime.combine(clock.today(), dt.time.min))
    return Letter.objects.filter(created_at__lt=start).exclude(previous_pin_sealed="").update(previous_pin_sealed="")
