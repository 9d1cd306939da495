"""Citizens, their key, and the key's contacts.

The key's lifecycle lives here and only here (:data:`TRANSITIONS` and :meth:`Key.transition`):
``pending → active ⇄ locked → blocked → (unlocked) active``, any state → ``cancelled``,
``active → expired``. Services call :meth:`Key.transition`; nothing assigns ``status`` directly.
"""

from __future__ import annotations

import datetime as dt
import unicodedata

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from chave import policy
from chave.compiled import Compiled


class DocType(models.TextChoices):
    CITIZEN_CARD = "cc", _("Portuguese civil ID (Citizen Card)")
    PASSPORT = "passport", _("Passport")
    RESIDENCE_PERMIT = "residence_permit", _("Residence permit")
    RESIDENCE_CARD = "residence_card", _("Residence card")


FOREIGN_DOC_TYPES = [DocType.PASSPORT, DocType.RESIDENCE_PERMIT, DocType.RESIDENCE_CARD]


class CivilRecord(models.Model):
    """The local civil records: the default source of identity data (see ``registry``).

    In production a registry adapter asks the State's registry instead; these rows are what the
    CLI (and later the counter) record after checking a document.
    """

    doc_type = models.CharField(max_length=20, choices=DocType.choices)
    doc_country = models.CharField(max_length=2)
    doc_number = models.CharField(max_length=32)
    full_name = models.CharField(max_length=200)
    given_name = models.CharField(max_length=100)
    family_name = models.CharField(max_length=100)
    birth_date = models.DateField()
    nif = models.CharField(max_length=9, blank=True)
    document_expiry = models.DateField()
    recorded_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["doc_type", "doc_country", "doc_number"], name="civil_record_doc_unique")
        ]


class Citizen(models.Model):
    """A person identified by NIC (Portuguese) or a foreign document (type, country, number)."""

    doc_type = models.CharField(max_length=20, choices=DocType.choices)
    # For Portuguese citizens doc_country is "PT" and doc_number the 8-digit NIC.
    doc_country = models.CharField(max_length=2)
    doc_number = models.CharField(max_length=32)
    full_name = models.CharField(max_length=200)
    given_name = models.CharField(max_length=100)
    family_name = models.CharField(max_length=100)
    birth_date = models.DateField()
    nif = models.CharField(max_length=9, blank=True)
    document_expiry = models.DateField()
    language = models.CharField(max_length=8, default="pt-pt")
    created_at = models.DateTimeField()
    # The full name folded (fold_name) for the counter's search by name: an index finds the first
    # names of a prefix among millions. Kept by save().
    name_key = models.CharField(max_length=200, db_index=True, blank=True, default="", editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["doc_type", "doc_country", "doc_number"], name="citizen_doc_unique")
        ]

    def __str__(self) -> str:
        return f"{self.full_name} ({self.document_label})"

    def save(self, *args, **kwargs):
        self.name_key = fold_name(self.full_name)
        if kwargs.get("update_fields") is not None and "full_name" in kwargs["update_fields"]:
            kwargs["update_fields"] = {*kwargs["update_fields"], "name_key"}
        super().save(*args, **kwargs)

    @property
    def key(self) -> "Key | None":
        """The citizen's live key, else their most recent one (None before any)."""
        keys = sorted(self.keys.all(), key=lambda k: (k.is_live, k.created_at, k.pk), reverse=True)
        return keys[0] if keys else None

    @property
    def nic(self) -> str | None:
        return self.doc_number if self.doc_type == DocType.CITIZEN_CARD else None

    @property
    def document_label(self) -> str:
        if self.doc_type == DocType.CITIZEN_CARD:
            return f"NIC {self.doc_number}"
        return f"{self.get_doc_type_display()} {self.doc_country} {self.doc_number}"

    @property
    def document_in_words(self) -> str:
        """The document as the citizen reads it, the country named in their language:
        "Passaporte FB123456 (Brasil)" / "Passport FB123456 (Brazil)"; "NIC 12345678"."""
        from chave import formats

        if self.doc_type == DocType.CITIZEN_CARD:
            return self.document_label
        return f"{self.get_doc_type_display()} {self.doc_number} ({formats.country(self.doc_country)})"


def fold_name(text: str) -> str:
    """A name as the counter searches it: lower case, without accents, single spaces
    ("José  Simões" → "jose simoes")."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.casefold().split())[:200]


class KeyStatus(models.TextChoices):
    PENDING = "pending", _("Pending activation")
    ACTIVE = "active", _("Active")
    LOCKED = "locked", _("Temporarily locked")
    BLOCKED = "blocked", _("Blocked")
    CANCELLED = "cancelled", _("Cancelled")
    EXPIRED = "expired", _("Expired")


S = KeyStatus
TRANSITIONS: dict[str, set[str]] = {
    S.PENDING: {S.ACTIVE, S.CANCELLED},
    S.ACTIVE: {S.LOCKED, S.BLOCKED, S.CANCELLED, S.EXPIRED},
    # locked → locked: a further failure after a lock ran out lengthens the wait.
    S.LOCKED: {S.ACTIVE, S.LOCKED, S.BLOCKED, S.CANCELLED, S.EXPIRED},
    S.BLOCKED: {S.ACTIVE, S.CANCELLED, S.EXPIRED},
    S.EXPIRED: {S.CANCELLED},
    S.CANCELLED: set(),
}
LIVE_STATUSES = {S.PENDING, S.ACTIVE, S.LOCKED, S.BLOCKED}


class IllegalTransition(Exception):
    def __init__(self, current: str, target: str):
        super().__init__(f"a key cannot go from {current} to {target}")
        self.current, self.target = current, target


class Key(models.Model):
    """The Digital Mobile Key: at most one live key per citizen.

    A cancelled or expired key stays for the record (history, audit); the citizen may then
    register a new key, which is a new row.
    """

    citizen = models.ForeignKey(Citizen, on_delete=models.PROTECT, related_name="keys")
    status = models.CharField(max_length=16, choices=KeyStatus.choices, default=KeyStatus.PENDING)
    pin_hash = models.CharField(max_length=200, blank=True)
    pin_is_temporary = models.BooleanField(default=False)
    pin_expires_at = models.DateTimeField(null=True, blank=True)
    pin_failures = models.PositiveIntegerField(default=0)
    locked_until = models.DateTimeField(null=True, blank=True)
    valid_until = models.DateField()
    created_at = models.DateTimeField()
    activated_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["citizen"],
                condition=Q(status__in=["pending", "active", "locked", "blocked"]),
                name="key_one_live_per_citizen",
            )
        ]

    def __str__(self) -> str:
        return f"key of {self.citizen} ({self.status})"

    @staticmethod
    def locked(pk: int) -> Key:
        """The key with its citizen, its row locked until the caller's transaction ends (what
        ``select_for_update().select_related("citizen").get(pk=pk)`` reads, compiled once)."""
        key = _LOCKED_KEY.first(pk)
        if key is None:
            raise Key.DoesNotExist("Key matching query does not exist.")
        return key

    @staticmethod
    def with_citizen(pk: int) -> Key | None:
        """The key with its citizen, or None."""
        return _KEY.first(pk)

    def verified_contacts(self) -> list[Contact]:
        """The key's live, verified contacts."""
        return _VERIFIED_CONTACTS.all(self.pk)

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    def transition(self, target: str, *, at: dt.datetime, locked_until: dt.datetime | None = None) -> None:
        """Move to ``target`` or raise :class:`IllegalTransition`. The caller saves."""
        if target not in TRANSITIONS[self.status]:
            raise IllegalTransition(self.status, target)
        self.status = target
        self.status_changed_at = at
        self.locked_until = locked_until if target == KeyStatus.LOCKED else None
        if target == KeyStatus.ACTIVE and self.activated_at is None:
            self.activated_at = at

    def lock_has_lapsed(self, at: dt.datetime) -> bool:
        return self.status == KeyStatus.LOCKED and self.locked_until is not None and self.locked_until <= at

    @property
    def last_activity(self) -> dt.datetime:
        """When the key was last used to log in (or, never used, activated or created)."""
        return self.last_used_at or self.activated_at or self.created_at

    def unused_too_long(self, at: dt.datetime) -> bool:
        """Unused for ``inactivity_revoke_days`` (Portaria 189/2014; 0 switches the rule off)."""
        days = int(policy.get("inactivity_revoke_days") or 0)
        return days > 0 and self.is_live and self.last_activity + dt.timedelta(days=days) <= at

    def effective_status(self, at: dt.datetime) -> str:
        """The status as the citizen would see it now: a lapsed lock reads as active, a key past
        its validity as expired and a key unused for too long as cancelled (revoked), even
        before :func:`chave.identity.services.revoke_unused_keys` has written it down."""
        status = KeyStatus.ACTIVE if self.lock_has_lapsed(at) else self.status
        if self.unused_too_long(at):
            return KeyStatus.CANCELLED
        # valid_until is a date where the service runs (Lisbon), not in UTC.
        if status in {KeyStatus.ACTIVE, KeyStatus.LOCKED} and self.valid_until < timezone.localdate(at):
            return KeyStatus.EXPIRED
        return status


# Reads of every login, compiled once (chave/compiled.py).
_LOCKED_KEY = Compiled(lambda pk: Key.objects.select_for_update().select_related("citizen").filter(pk=pk)[:1], int)
_KEY = Compiled(lambda pk: Key.objects.select_related("citizen").filter(pk=pk)[:1], int)
_VERIFIED_CONTACTS = Compiled(lambda key: Contact.objects.filter(key_id=key, verified_at__isnull=False, live=True), int)


class ContactKind(models.TextChoices):
    MOBILE = "mobile", _("Mobile number")
    EMAIL = "email", _("E-mail address")
    X = "x", _("X account")


class Contact(models.Model):
    """A way to reach the citizen: at most one of each kind per key.

    ``live`` mirrors whether the key is live, so that a mobile number or e-mail address can
    belong to at most one live key (a partial unique index) and is released on cancellation.
    """

    key = models.ForeignKey(Key, on_delete=models.CASCADE, related_name="contacts")
    kind = models.CharField(max_length=8, choices=ContactKind.choices)
    # E.164 for mobile, lower-cased address for e-mail, numeric user id for X.
    value = models.CharField(max_length=254)
    verified_at = models.DateTimeField(null=True, blank=True)
    live = models.BooleanField(default=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key", "kind"], name="contact_one_per_kind"),
            models.UniqueConstraint(
                fields=["kind", "value"], condition=Q(live=True), name="contact_value_one_live_key"
            ),
        ]
        # Finding a citizen by a contact they no longer hold too (the counter, `chave citizen show`).
        indexes = [models.Index(fields=["kind", "value"], name="contact_kind_value")]

    def __str__(self) -> str:
        return f"{self.kind}:{self.masked}"

    @property
    def masked(self) -> str:
        return mask(self.kind, self.value)


def mask(kind: str, value: str) -> str:
    """What a page may show of a contact: enough to recognise, not enough to harvest."""
    if kind == ContactKind.MOBILE:
        return value[:4] + "•" * max(0, len(value) - 7) + value[-3:]
    if kind == ContactKind.EMAIL:
        local, _, domain = value.partition("@")
        return (local[:1] + "•" * max(2, len(local) - 1)) + "@" + domain
    return "X •••" + value[-3:]
