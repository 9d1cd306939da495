"""Operations on citizens and keys. Every write to identity data goes through here.

Errors a person can act on are raised as ``django.core.exceptions.ValidationError`` (translated,
with a code); :class:`IllegalTransition` guards the key lifecycle. PIN checks return a
:class:`PinDecision` value; nothing here returns, logs or audits a PIN.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from chave import clock, policy
from chave.audit import services as audit
from chave.compiled import Compiled, first
from chave.delivery import services as delivery
from chave.throttle import services as throttle

from . import pins
from .models import LIVE_STATUSES, Citizen, Contact, ContactKind, DocType, IllegalTransition, Key, KeyStatus
from .registry import DocumentRef, IdentityRecord, civil_registry
from .signals import key_blocked, key_cancelled, key_renewed
from .validation import check_pin_rules, parse_email, parse_mobile, parse_x_user_id


# --- Registration -------------------------------------------------------------------------


@dataclass(frozen=True)
class ContactInput:
    kind: str
    value: str  # already normalised by chave.identity.validation


def age_on(birth_date: dt.date, day: dt.date) -> int:
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


def key_valid_until(doc_type: str, document_expiry: dt.date) -> dt.date:
    """Citizen Card: card expiry + 30 days (Portaria 190-A/2019); foreign documents: their expiry."""
    if doc_type == DocType.CITIZEN_CARD:
        return document_expiry + dt.timedelta(days=policy.get("key_validity_after_card_days"))
    return document_expiry


def generate_temporary_pin(birth_date: dt.date | None = None) -> str:
    """A random PIN that passes the PIN rules (for the citizen born on ``birth_date``, when
    given), for counters, letters and the CLI."""
    length = policy.get("pin_max_length")
    while True:
        candidate = "".join(secrets.choice("0123456789") for _ in range(length))
        try:
            return check_pin_rules(candidate, birth_date=birth_date)
        except ValidationError:
            continue


def _normalised(contacts: list[ContactInput]) -> list[ContactInput]:
    """The contacts in their one stored form, so that one number is never held twice because it
    was typed two ways (the parsers are idempotent on values they produced)."""
    parse = {ContactKind.MOBILE: parse_mobile, ContactKind.EMAIL: parse_email, ContactKind.X: parse_x_user_id}
    result = []
    for c in contacts:
        if c.kind not in parse:
            raise ValidationError(_("Unknown kind of contact."), code="contact_kind_invalid")
        result.append(ContactInput(c.kind, parse[c.kind](c.value)))
    return result


def register_citizen(
    doc: DocumentRef,
    contacts: list[ContactInput],
    *,
    pin: str | None = None,
    contacts_verified_by: str = "",
    language: str = "pt-pt",
    ip: str | None = None,
    channel: str = "",
) -> tuple[Key, str | None]:
    """Create the citizen (from the civil registry) and their key.

    With ``pin`` the key is activated with it; without, a temporary PIN is generated, returned
    once (it must be changed at first use and expires after ``temporary_pin_days``).
    ``contacts_verified_by`` names who vouched for the contacts (an operator, a counter); when
    empty, the contacts stay unverified and the key pending until they are confirmed by code.

    Contacts are normalised (E.164, lower-case e-mail) before they are stored. ``channel`` names
    where the registration came from (cli, counter, web) for the audit log.

    Raises ``ValidationError`` for: unknown document, under the minimum age, expired document,
    a key already registered, no contact, a malformed contact, a contact held by another live
    key (also when a concurrent registration takes it first), a bad PIN.
    """
    record: IdentityRecord | None = civil_registry().lookup(doc)
    if record is None:
        raise ValidationError(_("The civil registry has no record of this document."), code="unknown_document")
    today = clock.today()
    if age_on(record.birth_date, today) < policy.get("citizen_min_age_years"):
        raise ValidationError(
            _("The Digital Mobile Key is for people aged %(age)d or over.") % {"age": policy.get("citizen_min_age_years")},
            code="too_young",
        )
    if record.document_expiry < today:
        raise ValidationError(_("The identity document has expired: renew it first."), code="document_expired")
    contacts = _normalised(contacts)
    kinds = [c.kind for c in contacts]
    if not ({ContactKind.MOBILE, ContactKind.EMAIL} & set(kinds)):
        raise ValidationError(_("Give a mobile number or an e-mail address (or both)."), code="no_contact")
    if len(kinds) != len(set(kinds)):
        raise ValidationError(_("A key has at most one mobile number and one e-mail address."), code="duplicate_contact")
    temporary = pin is None
    if temporary:
        pin = generate_temporary_pin(record.birth_date)
    else:
        check_pin_rules(pin, birth_date=record.birth_date)
    pin_hash = pins.hash_pin(pin)

    now = clock.now()
    try:
        with transaction.atomic():
            citizen = Citizen.objects.filter(
                doc_type=doc.doc_type, doc_country=doc.doc_country, doc_number=doc.doc_number
            ).first()
            if citizen is not None and citizen.keys.filter(status__in=LIVE_STATUSES).exists():
                raise ValidationError(_("This person already has a Digital Mobile Key."), code="already_registered")
            _check_contacts_free(contacts)
            identity_data = dict(
                full_name=record.full_name, given_name=record.given_name, family_name=record.family_name,
                birth_date=record.birth_date, nif=record.nif, document_expiry=record.document_expiry,
                language=language,
            )
            if citizen is None:
                citizen = Citizen.objects.create(
                    doc_type=doc.doc_type, doc_country=doc.doc_country, doc_number=doc.doc_number,
                    created_at=now, **identity_data,
                )
            else:
                # A new key after a cancelled or expired one: the registry's data is current.
                for field, value in identity_data.items():
                    setattr(citizen, field, value)
                citizen.save()
            key = Key.objects.create(
                citizen=citizen,
                pin_hash=pin_hash,
                pin_is_temporary=temporary,
                pin_expires_at=now + dt.timedelta(days=policy.get("temporary_pin_days")) if temporary else None,
                valid_until=key_valid_until(doc.doc_type, record.document_expiry),
                created_at=now,
            )
            verified_at = now if contacts_verified_by else None
            for c in contacts:
                Contact.objects.create(key=key, kind=c.kind, value=c.value, verified_at=verified_at, created_at=now)
            audit.record("key.register", outcome="ok", citizen=citizen, channel=channel, ip=ip,
                         by=contacts_verified_by or "self", temporary_pin=temporary)
            if contacts_verified_by:
                activate_key(key, ip=ip, channel=channel)
    except IntegrityError:
        # A concurrent registration took the document or a contact between our check and insert:
        # say which, as the check before the insert would have.
        _check_contacts_free(contacts)
        raise ValidationError(_("This person already has a Digital Mobile Key."), code="already_registered")
    return key, (pin if temporary else None)


def _check_contacts_free(contacts: list[ContactInput], *, except_key: Key | None = None) -> None:
    for c in contacts:
        taken = Contact.objects.filter(kind=c.kind, value=c.value, live=True)
        if except_key is not None:
            taken = taken.exclude(key=except_key)
        if taken.exists():
            if c.kind == ContactKind.MOBILE:
                raise ValidationError(_("This mobile number is already tied to another Digital Mobile Key."),
                                      code="mobile_taken")
            if c.kind == ContactKind.X:
                # The database allows one live key per X account too (contact_value_one_live_key).
                raise ValidationError(_("This X account is already tied to another Digital Mobile Key."),
                                      code="x_taken")
            raise ValidationError(_("This e-mail address is already tied to another Digital Mobile Key."),
                                  code="email_taken")


def activate_key(key: Key, *, ip: str | None = None, channel: str = "") -> None:
    """pending → active, once at least one contact is verified; tells the citizen.

    Raises ``ValidationError`` without a verified contact, :class:`IllegalTransition` when the key
    is not pending.
    """
    if not key.contacts.filter(verified_at__isnull=False).exists():
        raise ValidationError(_("Confirm a contact before activating the key."), code="no_verified_contact")
    if key.status != KeyStatus.PENDING:
        raise IllegalTransition(key.status, KeyStatus.ACTIVE)
    key.transition(KeyStatus.ACTIVE, at=clock.now())
    key.save()
    audit.record("key.activate", outcome="ok", citizen=key.citizen, channel=channel, ip=ip)
    delivery.notify(key.citizen, "registered")


# --- Finding keys ------------------------------------------------------------------------


def find_key_by_contact(kind: str, value: str) -> Key | None:
    """The live key whose verified contact is ``value`` (a normalised mobile or e-mail)."""
    contact = _KEY_BY_CONTACT.first(kind, value)
    return contact.key if contact else None


_KEY_BY_CONTACT = Compiled(
    lambda kind, value: first(Contact.objects.select_related("key__citizen")
                              .filter(kind=kind, value=value, live=True, verified_at__isnull=False)), str, str)


def find_citizen(text: str) -> Citizen | None:
    """By mobile number, e-mail or NIC, for operators (``chave citizen show``)."""
    from .validation import parse_identifier, parse_nic

    try:
        nic = parse_nic(text)
    except ValidationError:
        nic = None
    if nic:
        # The whole document key (type, country, number): the unique index answers at once among millions.
        return Citizen.objects.filter(doc_type=DocType.CITIZEN_CARD, doc_country="PT", doc_number=nic).first()
    try:
        kind, value = parse_identifier(text)
    except ValidationError:
        return None
    contact = Contact.objects.select_related("key__citizen").filter(kind=kind, value=value).order_by("-live").first()
    return contact.key.citizen if contact else None


# --- PIN checks ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PinDecision:
    """The outcome of a PIN check. ``reason`` is for audit and internal use; pages show the
    same words for ``wrong``, ``unknown``, ``locked``, ``blocked`` and the other refusals so that
    nobody learns whether a number has a key (the citizen is told of locks on their contacts)."""

    ok: bool
    reason: str  # ok | wrong | unknown | throttled | locked | blocked | cancelled | expired | pending | temporary_pin_expired
    key: Key | None = None
    until: dt.datetime | None = None
    must_change_pin: bool = False


def _may_attempt(key: Key, now: dt.datetime) -> str:
    """``""`` when a PIN may be tried now, else why not."""
    status = key.effective_status(now)
    if status == KeyStatus.ACTIVE:
        return ""
    return status


def check_login_pin(key: Key | None, pin: str, *, ip: str | None = None, channel: str = "") -> PinDecision:
    """Check a login PIN for ``key`` (None when the identifier matched no key).

    Order: the per-IP throttle first (so that one client cannot lock many keys; a right PIN is
    taken back from it afterwards, :func:`chave.throttle.services.refund`), then the key's
    state, then Argon2id (always run, also for unknown keys and refusals, so the answer takes the
    same time), then the outcome is recorded under the key's row lock: failures are counted
    exactly under concurrency and lock or block the key as ``pin_lock_steps`` say.
    """
    now = clock.now()
    citizen = key.citizen if key else None
    gate = throttle.hit(("pin_attempt_per_ip", ip or ""))
    if not gate.allowed:
        pins.verify(None, pin)
        audit.record("pin.attempt", outcome="throttled", citizen=citizen, channel=channel, ip=ip)
        return PinDecision(False, "throttled", until=gate.retry_at)
    if key is None:
        pins.verify(None, pin)
        audit.record("pin.attempt", outcome="unknown", channel=channel, ip=ip)
        return PinDecision(False, "unknown")
    refusal = _may_attempt(key, now)
    if refusal:
        pins.verify(None, pin)
        audit.record("pin.attempt", outcome=refusal, citizen=citizen, channel=channel, ip=ip)
        return PinDecision(False, refusal, key=key, until=key.locked_until)

    # Argon2 runs outside the transaction: on SQLite a transaction holds the database's write
    # lock, and hashing under it would serialise every login of every key.
    verified_hash = key.pin_hash
    correct, needs_rehash = pins.verify(verified_hash, pin)

    with transaction.atomic():
        key = Key.locked(key.pk)
        now = clock.now()
        if key.pin_hash != verified_hash:
            # The PIN changed while we were hashing (rare): judge the attempt by the new one.
            correct, needs_rehash = pins.verify(key.pin_hash, pin)
        refusal = _may_attempt(key, now)
        if refusal:
            # Another request locked the key while we were hashing: this attempt does not count.
            audit.record("pin.attempt", outcome=refusal, citizen=key.citizen, channel=channel, ip=ip)
            return PinDecision(False, refusal, key=key, until=key.locked_until)
        lapsed = key.lock_has_lapsed(now)
        if lapsed:
            key.transition(KeyStatus.ACTIVE, at=now)
        if correct:
            if key.pin_is_temporary and key.pin_expires_at and key.pin_expires_at <= now:
                key.save()
                audit.record("pin.attempt", outcome="temporary_pin_expired", citizen=key.citizen, channel=channel, ip=ip)
                return PinDecision(False, "temporary_pin_expired", key=key)
            if lapsed or key.pin_failures or needs_rehash:  # else the row already says all this
                key.pin_failures = 0
                if needs_rehash:
                    key.pin_hash = pins.hash_pin(pin)
                key.save()
            audit.record("pin.attempt", outcome="ok", citizen=key.citizen, channel=channel, ip=ip,
                         rehashed=needs_rehash or None)
            # Only wrong PINs use up the address's budget: many citizens may share one address.
            throttle.refund(gate)
            return PinDecision(True, "ok", key=key, must_change_pin=key.pin_is_temporary)
        key.pin_failures += 1
        decision = PinDecision(False, "wrong", key=key)
        if key.pin_failures >= policy.get("pin_block_after"):
            key.transition(KeyStatus.BLOCKED, at=now)
            decision = PinDecision(False, "blocked", key=key)
        else:
            seconds = policy.get("pin_lock_steps").get(key.pin_failures)
            if seconds:
                until = now + dt.timedelta(seconds=seconds)
                key.transition(KeyStatus.LOCKED, at=now, locked_until=until)
                decision = PinDecision(False, "locked", key=key, until=until)
        key.save()
        audit.record("pin.attempt", outcome="wrong", citizen=key.citizen, channel=channel, ip=ip,
                     failures=key.pin_failures)
        if decision.reason in ("locked", "blocked"):
            audit.record(f"key.{decision.reason}", outcome="ok", citizen=key.citizen, channel=channel, ip=ip,
                         until=decision.until.isoformat() if decision.until else None, failures=key.pin_failures)
            delivery.notify(key.citizen, decision.reason, until=decision.until)
        if decision.reason == "blocked":
            key_blocked.send(sender=check_login_pin, key=key, by="wrong_pins")
        return decision


def change_pin(key: Key, new_pin: str, *, ip: str | None = None, reason: str = "citizen", channel: str = "",
               notify: bool = True) -> None:
    """Set a new (permanent) PIN, after the caller has authenticated the citizen.

    Resets the wrong-PIN count (not a lock or block: :func:`unlock_key` does that) and tells the
    citizen on their contacts (unless ``notify`` is false: the first PIN of an online
    registration, whose activation tells them). Raises ``ValidationError`` when the PIN breaks
    the rules or equals the current one.
    """
    check_pin_rules(new_pin, birth_date=key.citizen.birth_date)
    # Compare with the PIN stored now, not the one the caller's object was loaded with; hash
    # outside the transaction (see check_login_pin) and check again under the lock.
    current_hash = Key.objects.filter(pk=key.pk).values_list("pin_hash", flat=True).get()
    if pins.verify(current_hash, new_pin)[0]:
        raise ValidationError(_("Choose a PIN different from the current one."), code="pin_same")
    new_hash = pins.hash_pin(new_pin)
    with transaction.atomic():
        key = Key.locked(key.pk)
        if key.pin_hash != current_hash and pins.verify(key.pin_hash, new_pin)[0]:
            raise ValidationError(_("Choose a PIN different from the current one."), code="pin_same")
        key.pin_hash = new_hash
        key.pin_is_temporary = False
        key.pin_expires_at = None
        key.pin_failures = 0
        key.save()
        audit.record("pin.change", outcome="ok", citizen=key.citizen, channel=channel, ip=ip, by=reason)
        if notify:
            delivery.notify(key.citizen, "pin_changed")


def record_login(key: Key, *, at: dt.datetime) -> None:
    _USED.update(key.pk, at)


_USED = Compiled(lambda pk, at: Key.objects.filter(pk=pk), int, dt.datetime, update=lambda pk, at: {"last_used_at": at})


def cancel_key(key: Key, *, ip: str | None = None, by: str = "citizen", channel: str = "") -> None:
    """Any state → cancelled; contacts are released for other keys.

    Raises :class:`IllegalTransition` when the key is already cancelled.
    """
    with transaction.atomic():
        key = Key.locked(key.pk)
        key.transition(KeyStatus.CANCELLED, at=clock.now())
        key.save()
        key.contacts.update(live=False)
        audit.record("key.cancel", outcome="ok", citizen=key.citizen, channel=channel, ip=ip, by=by)
        key_cancelled.send(sender=cancel_key, key=key, by=by)


def unlock_key(key: Key, *, ip: str | None = None, by: str, channel: str = "") -> None:
    """locked / blocked → active (after a Citizen Card or counter check by the caller).

    Resets the wrong-PIN count. Raises :class:`IllegalTransition` for a key that is neither
    locked nor blocked: a pending key is activated by confirming a contact, not unlocked.
    """
    with transaction.atomic():
        key = Key.locked(key.pk)
        if key.status not in (KeyStatus.LOCKED, KeyStatus.BLOCKED):
            raise IllegalTransition(key.status, KeyStatus.ACTIVE)
        key.transition(KeyStatus.ACTIVE, at=clock.now())
        key.pin_failures = 0
        key.save()
        audit.record("key.unlock", outcome="ok", citizen=key.citizen, channel=channel, ip=ip, by=by)


def block_key(key: Key, *, ip: str | None = None, by: str, channel: str = "", **detail) -> bool:
    """active / locked → blocked at once (the citizen reported a use that was not theirs).

    Like the block after too many wrong PINs, only the Citizen Card or a counter unlocks it
    (:func:`unlock_key`). Returns False, changing nothing, when the key is blocked already.
    Audited as ``key.blocked`` with ``by`` and ``detail``; the caller tells the citizen. Raises
    :class:`IllegalTransition` for a key that is pending, cancelled or expired.
    """
    with transaction.atomic():
        key = Key.locked(key.pk)
        if key.status == KeyStatus.BLOCKED:
            return False
        key.transition(KeyStatus.BLOCKED, at=clock.now())
        key.save()
        audit.record("key.blocked", outcome="ok", citizen=key.citizen, channel=channel, ip=ip, by=by, **detail)
        key_blocked.send(sender=block_key, key=key, by=by)
    return True


def lock_key(key: Key, *, until: dt.datetime, ip: str | None = None, by: str, channel: str = "", **detail) -> bool:
    """active / locked → locked until ``until`` at once (the citizen said in the Chave app that a
    sign-in was not theirs: whoever typed the PIN is stopped for a while). A longer lock already
    in place stays. Returns False, changing nothing, for a key that is not active or locked.
    Audited as ``key.locked`` with ``by`` and ``detail``; the caller tells the citizen."""
    with transaction.atomic():
        key = Key.locked(key.pk)
        now = clock.now()
        if key.effective_status(now) not in (KeyStatus.ACTIVE, KeyStatus.LOCKED):
            return False
        if key.status == KeyStatus.LOCKED and key.locked_until and key.locked_until >= until:
            return True
        key.transition(KeyStatus.LOCKED, at=now, locked_until=until)
        key.save()
        audit.record("key.locked", outcome="ok", citizen=key.citizen, channel=channel, ip=ip, by=by,
                     until=until.isoformat(), **detail)
    return True


def pin_hash_digest(pin_hash: str) -> str:
    """Names one stored PIN hash without repeating it (letters keep this, never the hash)."""
    import hashlib

    return hashlib.sha256(pin_hash.encode()).hexdigest()


def set_temporary_pin(key: Key, *, by: str, ip: str | None = None, channel: str = "") -> tuple[str, str]:
    """Give a live key a new temporary PIN (the citizen forgot theirs): changed at first use,
    expires after ``temporary_pin_days``; the wrong-PIN count is reset (a lock or block stays:
    :func:`unlock_key` lifts it). Returns ``(pin, digest of its hash)`` once; the caller hands the
    PIN over (a letter) and keeps it nowhere. Raises ``ValidationError`` for a key that is not live.
    """
    pin = generate_temporary_pin(key.citizen.birth_date)
    new_hash = pins.hash_pin(pin)
    with transaction.atomic():
        key = Key.locked(key.pk)
        if not key.is_live:
            raise ValidationError(_("This Digital Mobile Key is cancelled or expired."), code="key_not_live")
        key.pin_hash = new_hash
        key.pin_is_temporary = True
        key.pin_expires_at = clock.now() + dt.timedelta(days=policy.get("temporary_pin_days"))
        key.pin_failures = 0
        key.save()
        audit.record("pin.temporary", outcome="ok", citizen=key.citizen, channel=channel, ip=ip, by=by)
    return pin, pin_hash_digest(new_hash)


def void_temporary_pin(key: Key, *, digest: str, by: str, ip: str | None = None, channel: str = "") -> bool:
    """Void the temporary PIN whose hash has ``digest`` (its letter was lost): the key keeps no
    usable PIN until a new one is issued. Returns False, changing nothing, when the key holds
    another PIN by now (the citizen changed it, or a newer one was issued)."""
    with transaction.atomic():
        key = Key.locked(key.pk)
        if not (key.pin_is_temporary and key.pin_hash and pin_hash_digest(key.pin_hash) == digest):
            return False
        key.pin_hash = ""
        key.save()
        audit.record("pin.void", outcome="ok", citizen=key.citizen, channel=channel, ip=ip, by=by)
    return True


def renew_document(key: Key, document_expiry: dt.date, *, by: str, ip: str | None = None, channel: str = "",
                   record: IdentityRecord | None = None) -> bool:
    """The citizen's identity document was renewed (the civil records say so, or a clerk saw the
    new one): the document's expiry and the key's validity follow it (Citizen Card + 30 days, a
    foreign document's own expiry), and the citizen is told (``key_renewed``). ``record``, the
    civil records' entry for the renewed document, brings names that changed with it. Receivers
    of ``key_renewed`` follow (a signing certificate is re-issued for the same key when the key
    outlives it or the names changed). Returns False, changing nothing, when the date is not
    later than the one on record. Raises ``ValidationError`` for a key that is not live or a
    date already past. Audited as ``key.renew``."""
    from chave.delivery import services as delivery

    if document_expiry < clock.today():
        raise ValidationError(_("This document has expired: it cannot renew the key."), code="document_expired")
    with transaction.atomic():
        key = Key.locked(key.pk)
        if not key.is_live:  # past its date but not yet written down as expired: still renewable
            raise ValidationError(_("This Digital Mobile Key is cancelled or expired."), code="key_not_live")
        citizen = key.citizen
        if document_expiry <= citizen.document_expiry:
            return False
        before = key.valid_until
        names = {"full_name": record.full_name, "given_name": record.given_name,
                 "family_name": record.family_name} if record else {}
        names = {name: value for name, value in names.items() if value and value != getattr(citizen, name)}
        for name, value in names.items():
            setattr(citizen, name, value)
        citizen.document_expiry = document_expiry
        citizen.save(update_fields=["document_expiry", *names])
        key.valid_until = key_valid_until(citizen.doc_type, document_expiry)
        key.save(update_fields=["valid_until"])
        audit.record("key.renew", outcome="ok", citizen=citizen, channel=channel, ip=ip, by=by,
                     valid_until=key.valid_until.isoformat(), previous_valid_until=before.isoformat(),
                     **({"names_changed": sorted(names)} if names else {}))
        delivery.notify(citizen, "key_renewed",
                        until=timezone.make_aware(dt.datetime.combine(key.valid_until, dt.time(12))))
        key_renewed.send(sender=Key, key=key, by=by, ip=ip, channel=channel)
    return True


def replace_document(key: Key, doc, document_expiry: dt.date, *, by: str, ip: str | None = None,
                     channel: str = "") -> str:
    """A foreign resident's renewed passport or residence document has a new number (a clerk saw
    it): the citizen's document becomes ``doc`` (a :class:`~.registry.DocumentRef`), the local
    civil records gain it, the key's validity follows its expiry (even an earlier one: the old
    document no longer counts), and the citizen is told (``key_new_document``). The citizen and their
    portal identifiers stay as they are; a signing certificate, which names the document, is
    re-issued for the same key and the earlier one revoked as superseded (``key_renewed``). Returns the previous
    document ("type country number"). Raises ``ValidationError``: ``document_expired`` (a past date),
    ``not_foreign`` (a Citizen Card keeps its NIC: :func:`renew_document`), ``same_document``
    (the number on record), ``document_taken`` (another person's document, in the citizens or
    the civil records), ``key_not_live``. Audited as ``key.new_document``."""
    from .models import CivilRecord
    from .registry import LocalRecords

    if document_expiry < clock.today():
        raise ValidationError(_("This document has expired: it cannot renew the key."), code="document_expired")
    taken = ValidationError(_("Another person is registered with this document: check the type, country and "
                              "number against the document in your hands."), code="document_taken")
    with transaction.atomic():
        key = Key.locked(key.pk)
        citizen = key.citizen
        if not key.is_live:
            raise ValidationError(_("This Digital Mobile Key is cancelled or expired."), code="key_not_live")
        if DocType.CITIZEN_CARD in (citizen.doc_type, doc.doc_type):
            raise ValidationError(_("A Citizen Card keeps its number (the NIC): record its renewal with the same "
                                    "number."), code="not_foreign")
        if (citizen.doc_type, citizen.doc_country, citizen.doc_number) == (doc.doc_type, doc.doc_country,
                                                                            doc.doc_number):
            raise ValidationError(_("This is the document on record: a renewal with the same number is recorded "
                                    "with “Record a renewed document”."), code="same_document")
        same_doc = {"doc_type": doc.doc_type, "doc_country": doc.doc_country, "doc_number": doc.doc_number}
        if Citizen.objects.filter(**same_doc).exists():
            raise taken
        record = CivilRecord.objects.filter(**same_doc).first()
        if record is not None and (record.full_name, record.birth_date) != (citizen.full_name, citizen.birth_date):
            raise taken
        previous, before = " ".join((citizen.doc_type, citizen.doc_country, citizen.doc_number)), key.valid_until
        LocalRecords().store(IdentityRecord(
            doc=doc, full_name=citizen.full_name, given_name=citizen.given_name, family_name=citizen.family_name,
            birth_date=citizen.birth_date, document_expiry=document_expiry, nif=citizen.nif))
        citizen.doc_type, citizen.doc_country, citizen.doc_number = doc.doc_type, doc.doc_country, doc.doc_number
        citizen.document_expiry = document_expiry
        try:
            with transaction.atomic():  # two clerks at once: the database's unique document decides
                citizen.save(update_fields=["doc_type", "doc_country", "doc_number", "document_expiry"])
        except IntegrityError:
            raise taken from None
        key.valid_until = key_valid_until(citizen.doc_type, document_expiry)
        key.save(update_fields=["valid_until"])
        audit.record("key.new_document", outcome="ok", citizen=citizen, channel=channel, ip=ip, by=by,
                     previous_document=previous, document=" ".join((doc.doc_type, doc.doc_country, doc.doc_number)),
                     valid_until=key.valid_until.isoformat(), previous_valid_until=before.isoformat())
        delivery.notify(citizen, "key_new_document",
                        until=timezone.make_aware(dt.datetime.combine(key.valid_until, dt.time(12))))
        # The signing certificate names the document: re-issued for the same key (chave.signing).
        key_renewed.send(sender=Key, key=key, by=by, ip=ip, channel=channel)
    return previous


def renew_from_registry(*, by: str = "civil-registry") -> int:
    """Renew every live key whose document expires within ``key_reminder_days`` (or has expired)
    and which the civil registry now shows renewed. Returns how many were renewed. Safe to run
    concurrently (each key is re-read under its row lock)."""
    from .registry import DocumentRef, civil_registry

    registry = civil_registry()
    horizon = clock.today() + dt.timedelta(days=int(policy.get("key_reminder_days")))
    renewed = 0
    for key in Key.objects.filter(status__in=[KeyStatus.ACTIVE, KeyStatus.LOCKED, KeyStatus.BLOCKED],
                                  citizen__document_expiry__lte=horizon).select_related("citizen"):
        citizen = key.citizen
        record = registry.lookup(DocumentRef(citizen.doc_type, citizen.doc_country, citizen.doc_number))
        if record is None or record.document_expiry <= citizen.document_expiry or record.document_expiry < clock.today():
            continue
        try:
            renewed += renew_document(key, record.document_expiry, by=by, channel="registry", record=record)
        except ValidationError:
            continue  # cancelled or expired meanwhile
    return renewed


def restore_pin(key: Key, *, pin_hash: str, temporary: bool, expires_at: dt.datetime | None, by: str,
                ip: str | None = None, channel: str = "") -> bool:
    """Give a key that has no PIN (its last one voided: a new-PIN letter reversed) the PIN it had
    before, by its hash. Returns False, changing nothing, when the key has a PIN by now, the key is
    not live, or that earlier PIN was temporary and has expired. Audited as ``pin.restore``."""
    with transaction.atomic():
        key = Key.locked(key.pk)
        if key.pin_hash or not pin_hash or not key.is_live or (temporary and expires_at and expires_at <= clock.now()):
            return False
        key.pin_hash, key.pin_is_temporary, key.pin_expires_at = pin_hash, temporary, expires_at if temporary else None
        key.save()
        audit.record("pin.restore", outcome="ok", citizen=key.citizen, channel=channel, ip=ip, by=by)
    return True


def expire_keys(*, by: str = "validity") -> int:
    """Write down ``expired`` for every active, locked or blocked key past its ``valid_until``
    (Citizen Card expiry + ``key_validity_after_card_days``; a foreign document's expiry) and
    release its contacts; returns how many. Such keys already read as expired
    (:meth:`Key.effective_status`). Meant to run periodically; safe to run concurrently (each key
    is re-read under its row lock)."""
    today = clock.today()
    expirable = [KeyStatus.ACTIVE, KeyStatus.LOCKED, KeyStatus.BLOCKED]
    expired = 0
    for pk in list(Key.objects.filter(status__in=expirable, valid_until__lt=today).values_list("pk", flat=True)):
        with transaction.atomic():
            key = Key.locked(pk)
            if key.status not in expirable or key.valid_until >= today:
                continue  # expired, cancelled or renewed since we looked
            key.transition(KeyStatus.EXPIRED, at=clock.now())
            key.save()
            key.contacts.update(live=False)
            audit.record("key.expire", outcome="ok", citizen=key.citizen, by=by, valid_until=key.valid_until.isoformat())
            expired += 1
    return expired


def cancel_abandoned_registrations(*, by: str = "abandoned") -> int:
    """Cancel every key still pending activation ``pending_key_days`` after it was created, and
    release its contacts; returns how many. A registration left half-way (online or at a counter)
    would otherwise keep its unconfirmed mobile number or e-mail from any other key. Meant to run
    periodically; safe to run concurrently (each key is re-read under its row lock)."""
    cutoff = clock.now() - dt.timedelta(days=int(policy.get("pending_key_days")))
    cancelled = 0
    for pk in list(Key.objects.filter(status=KeyStatus.PENDING, created_at__lt=cutoff).values_list("pk", flat=True)):
        with transaction.atomic():
            key = Key.locked(pk)
            if key.status != KeyStatus.PENDING:
                continue  # activated or cancelled since we looked
            key.transition(KeyStatus.CANCELLED, at=clock.now())
            key.save()
            key.contacts.update(live=False)
            audit.record("key.cancel", outcome="ok", citizen=key.citizen, by=by, channel="housekeeping")
            cancelled += 1
    return cancelled


def revoke_unused_keys(*, by: str = "inactivity") -> int:
    """Cancel every live key unused for ``inactivity_revoke_days`` (Portaria 189/2014) and
    release its contacts; returns how many. Does nothing when the setting is 0.

    Such keys already read as cancelled (:meth:`Key.effective_status`); this writes it down and
    frees their contacts. Meant to run periodically; safe to run concurrently.
    """
    days = int(policy.get("inactivity_revoke_days") or 0)
    if days <= 0:
        return 0
    now = clock.now()
    cutoff = now - dt.timedelta(days=days)
    from django.db.models.functions import Coalesce

    candidates = (
        Key.objects.filter(status__in=LIVE_STATUSES)
        .annotate(seen=Coalesce("last_used_at", "activated_at", "created_at"))
        .filter(seen__lte=cutoff)
        .values_list("pk", flat=True)
    )
    revoked = 0
    for pk in list(candidates):
        with transaction.atomic():
            key = Key.locked(pk)
            if not key.unused_too_long(now):
                continue  # used (or already cancelled) since we looked
            key.transition(KeyStatus.CANCELLED, at=now)
            key.save()
            key.contacts.update(live=False)
            audit.record("key.revoke", outcome="ok", citizen=key.citizen, by=by,
                         last_activity=key.last_activity.isoformat())
            key_cancelled.send(sender=revoke_unused_keys, key=key, by=by)
            revoked += 1
    return revoked

