"""Counter staff, the actions they take on citizens' keys, and activation letters.

- :class:`Staff`: a Django user (username + Argon2 password) with a role, a counter and a TOTP
  secret (sealed at rest; the last accepted time step stops a code being replayed).
- :class:`CounterAction`: every action a member of staff takes on a citizen, with the counter,
  the document the citizen presented and the reason; a supervisor may reverse it within the day.
- :class:`Letter` and :class:`PrintBatch`: a temporary PIN sent by post (see ``letters.py``). The
  PIN is sealed only until the background job has put it in the PDF; the PDF is sealed until the
  mail room marks its batch posted, then deleted.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from chave.identity.models import DocType

from .roles import CAPABILITIES, Role, RoleForm, role_label


class Staff(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="counter_staff")
    name = models.CharField(max_length=200)
    role = models.CharField(max_length=16, choices=Role.choices)
    # How the role is written about the member (pt-PT role names are gendered): their choice.
    role_form = models.CharField(max_length=1, choices=RoleForm.choices, default=RoleForm.NEUTRAL)
    counter = models.CharField(max_length=100, blank=True)
    totp_sealed = models.TextField()
    # The newest TOTP time step accepted: a code (or an older one) is never accepted twice.
    totp_last_step = models.BigIntegerField(default=0)
    # The civil ID number (NIC) of the member's own Citizen Card, when they sign in with it.
    nic = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["nic"], condition=~models.Q(nic=""), name="staff_nic_unique")]

    def __str__(self) -> str:
        return f"{self.name} ({self.user.username}, {self.role})"

    @property
    def username(self) -> str:
        return self.user.username

    @property
    def role_label(self) -> str:
        return role_label(self.role, self.role_form)

    @property
    def capabilities(self) -> frozenset[str]:
        return CAPABILITIES.get(self.role, frozenset())


class ActionKind(models.TextChoices):
    REGISTER = "register", _("Registration")
    UNLOCK = "unlock", _("Unlock")
    NEW_PIN = "new_pin", _("New PIN by letter")
    CANCEL = "cancel", _("Cancellation")
    CONTACT = "contact", _("Contact change")
    LETTER_CANCEL = "letter_cancel", _("Letter cancelled")
    APP_REMOVE = "app_remove", _("Chave app removed")
    SIGNING = "signing", _("Signing activated")
    RENEW = "renew", _("Renewed document recorded")


class CounterAction(models.Model):
    """One action of a member of staff on a citizen's key: who, where, on which document, why."""

    kind = models.CharField(max_length=16, choices=ActionKind.choices)
    staff = models.ForeignKey(Staff, on_delete=models.PROTECT, related_name="actions")
    counter = models.CharField(max_length=100, blank=True)
    citizen = models.ForeignKey("identity.Citizen", on_delete=models.PROTECT, related_name="counter_actions")
    key = models.ForeignKey("identity.Key", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    document_type = models.CharField(max_length=20, choices=DocType.choices)
    document_country = models.CharField(max_length=2)
    document_number = models.CharField(max_length=32)
    reason = models.TextField()
    at = models.DateTimeField(db_index=True)
    # Safe detail (never a PIN or a code): the letter's reference, the contact's kind.
    detail = models.JSONField(default=dict, blank=True)
    reversed_at = models.DateTimeField(null=True, blank=True)
    reversed_by = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    reversal_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]


class LetterStatus(models.TextChoices):
    QUEUED = "queued", _("Being produced")
    READY = "ready", _("Ready to print")
    BATCHED = "batched", _("Printed, to be posted")
    POSTED = "posted", _("Posted")
    PRINTED = "printed", _("Printed at the counter, to hand over")
    HANDED = "handed", _("Handed over sealed")
    PRINT_FAILED = "failed", _("Printing failed")
    CANCELLED = "cancelled", _("Cancelled")


class LetterDelivery(models.TextChoices):
    POST = "post", _("By post to the citizen's address")
    COUNTER = "counter", _("Printed here and handed over sealed")


class Letter(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    reference = models.CharField(max_length=20, unique=True)
    citizen = models.ForeignKey("identity.Citizen", on_delete=models.PROTECT, related_name="letters")
    key = models.ForeignKey("identity.Key", on_delete=models.PROTECT, related_name="letters")
    status = models.CharField(max_length=10, choices=LetterStatus.choices, default=LetterStatus.QUEUED)
    delivery = models.CharField(max_length=8, choices=LetterDelivery.choices, default=LetterDelivery.POST)
    counter = models.CharField(max_length=100, blank=True)  # where a mailer handed over is printed
    recipient = models.CharField(max_length=200)
    address = models.TextField(blank=True)  # the postal address, lines as typed ("" when handed over)
    language = models.CharField(max_length=8, default="pt-pt")
    # The temporary PIN, sealed, only until the job has put it in the PDF; then "".
    pin_sealed = models.TextField(blank=True)
    # Identifies the PIN hash this letter set on the key (a digest of the hash, not of the PIN),
    # so that cancelling the letter voids that PIN and no later one.
    pin_hash_digest = models.CharField(max_length=64)
    # The PIN the key had before this letter's (its Argon2 hash, sealed, with whether it was
    # temporary and until when): a supervisor reversing the new PIN gives it back, the same day;
    # wiped when the letter is cancelled and by housekeeping after that day.
    previous_pin_sealed = models.TextField(blank=True)
    previous_pin_temporary = models.BooleanField(default=False)
    previous_pin_expires_at = models.DateTimeField(null=True, blank=True)
    valid_until = models.DateTimeField()
    # The PDF (it shows the PIN), sealed, from production until its batch is posted; then "". A
    # mailer handed over at the counter goes straight to the counter's printer and is never stored.
    pdf_sealed = models.TextField(blank=True)
    batch = models.ForeignKey("PrintBatch", null=True, blank=True, on_delete=models.PROTECT, related_name="letters")
    created_at = models.DateTimeField()
    # A mailer handed over: failed prints so far (retried with ``counter_print_backoff_seconds``),
    # when the next try is due, and the printer's last error (never the PDF or the PIN).
    print_attempts = models.PositiveSmallIntegerField(default=0)
    next_print_at = models.DateTimeField(null=True, blank=True)
    print_error = models.CharField(max_length=200, blank=True)
    produced_at = models.DateTimeField(null=True, blank=True)
    posted_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    # What the clerk may cancel from the citizen's page: a posted letter ("lost in the post"), or one
    # not yet in the mail room's hands. A letter printed in a batch, to be posted, waits for the post.
    CANCELLABLE = (LetterStatus.QUEUED, LetterStatus.READY, LetterStatus.PRINTED, LetterStatus.HANDED,
                   LetterStatus.PRINT_FAILED, LetterStatus.POSTED)

    class Meta:
        ordering = ["-created_at"]


class PrintBatch(models.Model):
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(Staff, on_delete=models.PROTECT, related_name="+")
    downloads = models.PositiveIntegerField(default=0)
    posted_at = models.DateTimeField(null=True, blank=True)
    posted_by = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["-created_at"]


class KeyReminder(models.Model):
    """A reminder sent before a key expires or is revoked for disuse: one per key, kind and due
    date (the unique constraint is what makes concurrent housekeeping runs send it once)."""

    class Kind(models.TextChoices):
        EXPIRY = "expiry", _("Expiry")
        INACTIVITY = "inactivity", _("Revocation for disuse")

    key = models.ForeignKey("identity.Key", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    due = models.DateField()
    sent_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "kind", "due"], name="key_reminder_once")]


class CitizenScreen(models.Model):
    """The screen at a desk that faces the citizen (a tablet): where the citizen types a code or
    chooses their PIN, out of the clerk's sight. Paired to one member of staff by a one-time link;
    the device then holds a random secret in a cookie (only its hash is kept)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    staff = models.ForeignKey(Staff, on_delete=models.CASCADE, related_name="screens")
    pairing_hash = models.CharField(max_length=64, blank=True)  # "" once used
    pairing_expires_at = models.DateTimeField()
    secret_hash = models.CharField(max_length=64, blank=True)  # "" until paired
    paired_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()


class TurnKind(models.TextChoices):
    CODE = "code", _("Type the code sent to a contact")
    PIN = "pin", _("Choose the PIN")
    SIGNING = "signing", _("Choose the signing PIN")


class TurnStatus(models.TextChoices):
    OPEN = "open", _("Waiting for the citizen")
    DONE = "done", _("Done")
    CANCELLED = "cancelled", _("Cancelled")


class CitizenTurn(models.Model):
    """One thing the citizen does on the desk's citizen screen."""

    screen = models.ForeignKey(CitizenScreen, on_delete=models.CASCADE, related_name="turns")
    staff = models.ForeignKey(Staff, on_delete=models.PROTECT, related_name="+")
    key = models.ForeignKey("identity.Key", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=8, choices=TurnKind.choices)
    contact_kind = models.CharField(max_length=8, blank=True)
    contact_value = models.CharField(max_length=254, blank=True)
    transaction = models.CharField(max_length=64, blank=True)  # the code's transaction id (not a secret)
    status = models.CharField(max_length=10, choices=TurnStatus.choices, default=TurnStatus.OPEN)
    # What to record when the turn is done (a contact change: the document presented and the reason).
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class CounterRegistration(models.Model):
    """A registration at the counter, from the clerk's form to the active key: contacts confirmed
    by code on the citizen screen, then the PIN chosen there or sent by letter."""

    class PinBy(models.TextChoices):
        SCREEN = "screen", _("The citizen chooses it on the citizen screen")
        LETTER = "letter", _("A temporary PIN by letter")

    action = models.OneToOneField(CounterAction, on_delete=models.PROTECT, related_name="registration")
    key = models.ForeignKey("identity.Key", on_delete=models.PROTECT, related_name="+")
    pin_by = models.CharField(max_length=8, choices=PinBy.choices)
    address = models.TextField(blank=True)
    pin_chosen_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
