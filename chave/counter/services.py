"""Counter operations: staff accounts and sign-in, finding citizens, acting on their keys.

Every action on a citizen goes through :func:`act` and is recorded twice: a
:class:`~.models.CounterAction` row (which a supervisor may reverse within the day, see
:func:`reverse`) and an audit event ``counter.<kind>`` naming the member of staff, the counter,
the document the citizen presented and the reason. The identity services it calls audit their own
event with ``by="staff:<username>"`` and ``channel="counter"``. Nothing here returns, logs or
audits a PIN, a code or a TOTP secret, except :func:`create_staff`, which returns the new
account's password and provisioning URI once.

Errors a person can act on are ``django.core.exceptions.ValidationError`` (translated, with a code).
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from dataclasses import dataclass

import pyotp
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import formats, timezone
from django.utils.translation import gettext_lazy as _

from chave import clock, policy, sealing
from chave.audit import services as audit
from chave.delivery import services as delivery
from chave.identity import services as identity
from chave.identity.models import Citizen, DocType, IllegalTransition, Key, KeyStatus, fold_name
from chave.identity.registry import DocumentRef
from chave.identity.validation import parse_doc_number, parse_identifier, parse_name, parse_nic
from chave.throttle import services as throttle

from .models import ActionKind, CounterAction, Staff
from .roles import Role, RoleForm

_TOTP_PURPOSE = "staff-totp"
TOTP_STEP_SECONDS = 30
CHANNEL = "counter"


# --- Staff accounts ------------------------------------------------------------------------


@dataclass(frozen=True)
class NewStaff:
    staff: Staff
    password: str  # shown once, never stored in clear
    provisioning_uri: str  # otpauth:// URI with the TOTP secret, shown once


def _seal_totp(secret: str) -> str:
    return sealing.seal(secret, secret=settings.CHAVE_KEY_SEAL_SECRET, purpose=_TOTP_PURPOSE)


def _totp(staff: Staff) -> pyotp.TOTP:
    secret = sealing.unseal(staff.totp_sealed, secret=settings.CHAVE_KEY_SEAL_SECRET, purpose=_TOTP_PURPOSE)
    return pyotp.TOTP(secret, interval=TOTP_STEP_SECONDS)


def create_staff(*, username: str, name: str, role: str, counter: str = "", nic: str = "",
                 admin: bool = False, role_form: str = "n") -> NewStaff:
    """Create a staff account with a random password and a new TOTP secret; with ``nic``, the
    member may also sign in with their own Citizen Card; with ``admin``, they may also use
    Django's admin (``chave.admin_site``: only through this same sign-in).

    Raises ``ValidationError`` for an unknown role, an empty username or name, a clerk or
    supervisor without a counter, a malformed NIC, or a username or NIC already taken.
    """
    username, name, counter = username.strip(), name.strip(), counter.strip()
    nic = parse_nic(nic) if nic.strip() else ""
    if role not in Role.values:
        raise ValidationError(_("Unknown role."), code="role_invalid")
    if role_form not in RoleForm.values:
        raise ValidationError(_("Unknown form of the role's name."), code="role_form_invalid")
    if not username or not name:
        raise ValidationError(_("Give a username and a name."), code="required")
    if role in (Role.CLERK, Role.SUPERVISOR) and not counter:
        raise ValidationError(_("Clerks and supervisors work at a counter: give it."), code="counter_required")
    password = secrets.token_urlsafe(15)
    secret = pyotp.random_base32()
    try:
        with transaction.atomic():
            user = get_user_model().objects.create_user(username=username, password=password, is_staff=admin)
            staff = Staff.objects.create(user=user, name=name, role=role, role_form=role_form, counter=counter, nic=nic,
                                         totp_sealed=_seal_totp(secret), created_at=clock.now())
            sync_admin_access(staff)
            audit.record("staff.add", outcome="ok", channel="cli", staff=username, role=role, counter=counter,
                         admin=admin)
    except IntegrityError:
        if nic and Staff.objects.filter(nic=nic).exists():
            raise ValidationError(_("Another staff account has this civil ID number."), code="nic_taken")
        raise ValidationError(_("This username is taken."), code="username_taken")
    uri = pyotp.TOTP(secret, interval=TOTP_STEP_SECONDS).provisioning_uri(name=username, issuer_name="Chave")
    return NewStaff(staff, password, uri)


def current_totp_code(username: str) -> str:
    """The staff member's authenticator code for now (development only: it stands in for their
    phone, as the development outbox stands in for the citizen's). Raises ``ValidationError`` in
    production or for an unknown username."""
    if settings.IS_PRODUCTION:
        raise ValidationError(_("Not available in production: staff read the code from their authenticator."),
                              code="production")
    staff = Staff.objects.select_related("user").filter(user__username=username).first()
    if staff is None:
        raise ValidationError(_("No staff account with this username."), code="unknown")
    return _totp(staff).at(clock.now())


def ensure_demo_staff(username: str, *, name: str, role: str, counter: str, password: str, nic: str = "",
                      admin: bool = False) -> Staff:
    """A demo staff account with a known password (development only; idempotent: the password and
    the civil number of the member's own card are set again on every call, the TOTP secret kept).
    Raises ``ValidationError`` in production."""
    if settings.IS_PRODUCTION:
        raise ValidationError(_("Demo staff accounts are refused in production."), code="production")
    staff = Staff.objects.select_related("user").filter(user__username=username).first()
    if staff is None:
        staff = create_staff(username=username, name=name, role=role, counter=counter, nic=nic, admin=admin).staff
    elif staff.nic != nic:
        staff.nic = nic
        staff.save(update_fields=["nic"])
    staff.user.set_password(password)
    staff.user.is_staff = admin
    staff.user.save(update_fields=["password", "is_staff"])
    sync_admin_access(staff)
    return staff


def sync_admin_access(staff: Staff) -> None:
    """Give the member, in Django's admin, what their role may do there and nothing more
    (:data:`~.roles.ADMIN_PERMISSIONS`, through a group per role): never a superuser. Run when the
    account is made and at each sign-in, so a role's table change reaches existing accounts."""
    from django.contrib.auth.models import Group, Permission

    from .roles import ADMIN_PERMISSIONS

    wanted = ADMIN_PERMISSIONS.get(staff.role, frozenset())
    group, _created = Group.objects.get_or_create(name=f"chave-role-{staff.role}")
    permissions = [p for p in Permission.objects.select_related("content_type").filter(
        codename__in={name.split(".")[1] for name in wanted}) if f"{p.content_type.app_label}.{p.codename}" in wanted]
    group.permissions.set(permissions)
    user = staff.user
    if user.is_superuser:
        user.is_superuser = False
        user.save(update_fields=["is_superuser"])
    user.user_permissions.clear()
    user.groups.set([group] if user.is_staff else [])


@dataclass(frozen=True)
class StaffSignIn:
    ok: bool
    reason: str  # ok | wrong | throttled
    staff: Staff | None = None


def _matching_step(staff: Staff, code: str, at: dt.datetime) -> int | None:
    """The time step whose TOTP equals ``code`` within the allowed drift, else None."""
    totp = _totp(staff)
    drift = int(policy.get("staff_totp_drift_steps"))
    found = None
    for offset in range(-drift, drift + 1):
        moment = at + dt.timedelta(seconds=offset * TOTP_STEP_SECONDS)
        if hmac.compare_digest(totp.at(moment), code):
            found = totp.timecode(moment)
    return found


def check_staff_sign_in(username: str, password: str, code: str, *, ip: str | None = None) -> StaffSignIn:
    """Password and TOTP code, both required; one answer for every refusal.

    Throttled per client IP and per username before anything is checked; a successful sign-in is
    taken back from both counts, so only failures use them up. A TOTP code is accepted
    once (the account's newest accepted time step only goes up, by a conditional update, so two
    concurrent sign-ins with one code cannot both pass). The password is always checked, so an
    unknown username takes as long as a known one.
    """
    from django.contrib.auth import authenticate

    username = (username or "").strip()
    gate = throttle.hit(("staff_login_per_ip", ip or ""), ("staff_login_per_user", username.lower()))
    if not gate.allowed:
        audit.record("staff.sign_in", outcome="throttled", channel=CHANNEL, ip=ip, staff=username[:150])
        return StaffSignIn(False, "throttled")
    user = authenticate(username=username, password=password or "")
    staff = Staff.objects.filter(user=user).select_related("user").first() if user is not None else None
    step = None
    code = (code or "").strip().replace(" ", "")
    if staff is not None and code.isdigit():
        step = _matching_step(staff, code, clock.now())
    if step is not None and Staff.objects.filter(pk=staff.pk, totp_last_step__lt=step).update(totp_last_step=step):
        audit.record("staff.sign_in", outcome="ok", channel=CHANNEL, ip=ip, staff=staff.username)
        # Only failed sign-ins use up the limits: a counter's desks often share one address.
        throttle.refund(gate)
        return StaffSignIn(True, "ok", staff)
    audit.record("staff.sign_in", outcome="wrong", channel=CHANNEL, ip=ip, staff=username[:150])
    return StaffSignIn(False, "wrong")


def check_staff_card(card, *, ip: str | None = None) -> StaffSignIn:
    """Sign-in with the member's own Citizen Card, verified (chain, dates, revocation) and read
    with its PIN by :mod:`chave.card` — possession and knowledge, the two factors. The card's
    NIC must be the one on an active staff account (``chave staff add --nic``). Throttled per IP
    like the password sign-in; one answer for every refusal."""
    gate = throttle.hit(("staff_login_per_ip", ip or ""))
    if not gate.allowed:
        audit.record("staff.sign_in", outcome="throttled", channel=CHANNEL, ip=ip, method="citizen_card")
        return StaffSignIn(False, "throttled")
    staff = Staff.objects.select_related("user").filter(nic=card.nic, user__is_active=True).first()
    if staff is None:
        audit.record("staff.sign_in", outcome="unknown_card", channel=CHANNEL, ip=ip, method="citizen_card",
                     certificate=card.certificate_serial)
        return StaffSignIn(False, "wrong")
    audit.record("staff.sign_in", outcome="ok", channel=CHANNEL, ip=ip, staff=staff.username, method="citizen_card",
                 certificate=card.certificate_serial)
    return StaffSignIn(True, "ok", staff)


# --- Finding citizens ----------------------------------------------------------------------


def find_citizens(text: str = "", *, doc_type: str = "", doc_country: str = "", doc_number: str = "") -> list[Citizen]:
    """By NIC, mobile number or e-mail (``text``), by name (``text`` that is no identifier: the
    citizens whose full name starts with it, accents and case aside, at most
    ``counter_name_search_max`` in alphabetical order), or by a foreign document. Empty when
    nothing matches."""
    if doc_type:
        try:
            doc_number = parse_doc_number(doc_number)
        except ValidationError:
            return []
        return list(Citizen.objects.filter(doc_type=doc_type, doc_country=(doc_country or "").strip().upper(),
                                           doc_number=doc_number))
    text = (text or "").strip()
    if not text:
        return []
    try:
        parse_nic(text)
    except ValidationError:
        try:
            parse_identifier(text)
        except ValidationError:
            return find_by_name(text)
    citizen = identity.find_citizen(text)
    return [citizen] if citizen else []


def find_by_name(text: str) -> list[Citizen]:
    """Citizens whose folded full name starts with the folded ``text`` (see ``fold_name``).

    No ORDER BY in the query: on PostgreSQL the prefix is read from the name's pattern index
    (``varchar_pattern_ops``, in byte order, which is alphabetical for folded names) and stops at
    the limit, however many millions share a common first name."""
    try:
        name = parse_name(text, max_length=200)
    except ValidationError:
        return []
    key = fold_name(name)
    limit = policy.get("counter_name_search_max")
    found = list(Citizen.objects.filter(name_key__startswith=key).order_by()[:limit])
    return sorted(found, key=lambda c: (c.name_key, c.birth_date, c.pk))


# --- Acting on a citizen -------------------------------------------------------------------


@dataclass(frozen=True)
class Presented:
    """The identity document the citizen presented at the counter, and why the action is taken."""

    doc_type: str
    doc_country: str
    doc_number: str
    reason: str


def check_presented(citizen: Citizen, presented: Presented, *, new_number: bool = False) -> Presented:
    """The document must be a known type; when it is of the citizen's registered type and country,
    its number must be the registered one (a Citizen Card's full number starts with the NIC).
    With ``new_number`` (a foreign resident's renewed document with a new number) it is a foreign
    document instead, and its number is not the one on record.
    The reason must say something (``counter_reason_min_length`` characters). Returns it
    normalised; raises one ``ValidationError`` naming every problem by its form field
    (``presented_type``, ``presented_country``, ``presented_number``, ``reason``)."""
    problems: dict[str, list] = {}
    reason = " ".join((presented.reason or "").split())
    least = policy.get("counter_reason_min_length")
    if len(reason) < least:
        problems["reason"] = [ValidationError(
            _("The reason needs at least %(n)d characters: say what the citizen asked for and why."),
            code="reason_short", params={"n": least})]
    country = (presented.doc_country or "").strip().upper()
    number = "".join((presented.doc_number or "").split()).upper()
    if presented.doc_type not in DocType.values:
        problems["presented_type"] = [ValidationError(_("Choose the document presented."), code="document_type")]
    elif presented.doc_type == DocType.CITIZEN_CARD:
        country = "PT"
    if len(country) != 2 or not country.isalpha():
        problems["presented_country"] = [ValidationError(
            _("Give the issuing country as 2 letters, as on the document (PT, BR, UA …)."), code="document_country")]
    if not number:
        problems["presented_number"] = [ValidationError(_("Give the number of the document presented."),
                                                        code="document_number")]
    elif new_number:
        try:
            number = parse_doc_number(number)  # a number that is recorded, so as the registration reads it
        except ValidationError as error:
            problems["presented_number"] = [error]
        if presented.doc_type == DocType.CITIZEN_CARD:
            problems["presented_type"] = [ValidationError(
                _("Choose the renewed passport or residence document: a Citizen Card keeps its number."),
                code="document_type")]
        elif (presented.doc_type, country, number) == (citizen.doc_type, citizen.doc_country, citizen.doc_number):
            problems["presented_number"] = [ValidationError(
                _("This is the number on record. Give the renewed document's new number, or record a renewal "
                  "with the same number instead."), code="same_document")]
    elif presented.doc_type == citizen.doc_type and country == citizen.doc_country:
        registered = citizen.doc_number.upper()
        same = number[: len(registered)] == registered if citizen.doc_type == DocType.CITIZEN_CARD else number == registered
        if not same:
            problems["presented_number"] = [ValidationError(
                _("This is not the citizen's registered document: check the number against the document in your "
                  "hands."), code="document_mismatch")]
    if problems:
        raise ValidationError(problems)
    return Presented(presented.doc_type, country, number, reason)


def record_action(staff: Staff, kind: str, citizen: Citizen, key: Key | None, presented: Presented, *,
                  ip: str | None = None, **detail) -> CounterAction:
    """Write the action row and its audit event (inside the caller's transaction)."""
    action = CounterAction.objects.create(
        kind=kind, staff=staff, counter=staff.counter, citizen=citizen, key=key,
        document_type=presented.doc_type, document_country=presented.doc_country,
        document_number=presented.doc_number, reason=presented.reason, at=clock.now(), detail=detail,
    )
    audit.record(f"counter.{kind}", outcome="ok", citizen=citizen, channel=CHANNEL, ip=ip, staff=staff.username,
                 counter=staff.counter, document=f"{presented.doc_type} {presented.doc_country} {presented.doc_number}",
                 reason=presented.reason, action=action.pk, **detail)
    return action


def by(staff: Staff) -> str:
    return f"staff:{staff.username}"


def who_did(recorded: list[str]) -> dict[str, str]:
    """Who made each decision of a history, in words, for its ``by`` values (:func:`by`'s
    ``staff:<username>``, the ``rp`` command's ``<user> (CLI)``, ``seed_demo``): a member of staff
    by name and username, the command line and the demo data said so; anything else as recorded."""
    from chave.public.management.commands.seed_demo import SEEDED_BY

    usernames = {value.removeprefix("staff:") for value in recorded if value.startswith("staff:")}
    names = dict(Staff.objects.filter(user__username__in=usernames).values_list("user__username", "name"))
    words = {}
    for value in recorded:
        username = value.removeprefix("staff:")
        if value.startswith("staff:"):
            words[value] = f"{names[username]} ({username})" if username in names else username
        elif value.endswith(" (CLI)"):
            words[value] = _("%(user)s, on the command line") % {"user": value.removesuffix(" (CLI)")}
        elif value == SEEDED_BY:
            words[value] = _("The demo data (make run)")
        else:
            words[value] = value
    return words


def unlock(staff: Staff, key: Key, presented: Presented, *, ip: str | None = None) -> CounterAction:
    """Unlock a locked or blocked key. Raises ``ValidationError`` for any other state."""
    presented = check_presented(key.citizen, presented)
    with transaction.atomic():
        try:
            identity.unlock_key(key, ip=ip, by=by(staff), channel=CHANNEL)
        except IllegalTransition:
            raise ValidationError(_("This key is neither locked nor blocked."), code="not_locked")
        action = record_action(staff, ActionKind.UNLOCK, key.citizen, key, presented, ip=ip)
        delivery.notify(key.citizen, "key_unlocked_at_counter")  # a clerk acting alone is seen by the citizen
        return action


def cancel(staff: Staff, key: Key, presented: Presented, *, ip: str | None = None) -> CounterAction:
    """Cancel the key at the citizen's request: contacts released, the citizen told, every session
    and token of the key ended. It cannot be reversed (a new key is a registration). Raises
    ``ValidationError`` when it is cancelled already."""
    presented = check_presented(key.citizen, presented)
    with transaction.atomic():
        try:
            identity.cancel_key(key, ip=ip, by=by(staff), channel=CHANNEL)
        except IllegalTransition:
            raise ValidationError(_("This key is cancelled already."), code="already_cancelled")
        action = record_action(staff, ActionKind.CANCEL, key.citizen, key, presented, ip=ip)
        from chave.portal.services import end_key_sessions

        delivery.notify(key.citizen, "key_cancelled")
        end_key_sessions(key, ip=ip, by=by(staff))
        return action


def start_contact_change(staff: Staff, key: Key, kind: str, value: str, presented: Presented, *,
                         ip: str | None = None, language: str | None = None):
    """Send a code to the new mobile number or e-mail address and put "type the code" on the
    desk's citizen screen. The contact changes (and the action is recorded) only when the citizen
    types the right code there (:func:`after_contact_confirmed`).

    Raises ``ValidationError`` for a short reason, a document that is not the citizen's, a
    malformed or taken contact, a key that is not live, no paired screen, or a code that could not
    be sent (cooldown, send caps, SMS country).
    """
    from chave.identity import contacts
    from chave.identity.models import ContactKind
    from chave.delivery.providers import enabled_channels
    from chave.identity.validation import parse_email, parse_mobile, parse_x_user_id

    from . import screen
    from .models import TurnKind

    presented = check_presented(key.citizen, presented)
    parse = {ContactKind.MOBILE: parse_mobile, ContactKind.EMAIL: parse_email}
    if "x" in enabled_channels():
        parse[ContactKind.X] = parse_x_user_id
    if kind not in parse:
        raise ValidationError(_("Choose a mobile number, an e-mail address or an X account."),
                              code="contact_kind_invalid")
    value = parse[kind](value)
    screen.require_screen(staff)  # before a code is sent for nothing
    started = contacts.request_verification(key, kind, value, ip=ip, language=language)
    if not started.sent:
        raise ValidationError(_("The code could not be sent now (%(reason)s). Try again in a moment."),
                              code="not_sent", params={"reason": started.issue.reason})
    return screen.open_turn(staff, key, TurnKind.CODE, contact_kind=kind, contact_value=value,
                            transaction_id=started.transaction,
                            detail={"presented": [presented.doc_type, presented.doc_country, presented.doc_number,
                                                  presented.reason]})


def start_signing_activation(staff: Staff, key: Key, presented: Presented, *, ip: str | None = None):
    """Put "choose your signing PIN" on the desk's citizen screen, for a citizen present with their
    document: the citizen types it twice there (:func:`.screen.submit_signing_pin`), and signing is
    activated as online (``chave.signing.services.activate_signing``: the same rules, audit and
    notice), the counter action recorded with it. Raises ``ValidationError`` for a short reason, a
    document that is not the citizen's, a key that is not active, signing already active, or no
    paired screen."""
    from chave.signing import services as signing

    from . import screen
    from .models import TurnKind

    presented = check_presented(key.citizen, presented)
    if key.effective_status(clock.now()) != KeyStatus.ACTIVE:
        raise ValidationError(_("Signing needs an active Digital Mobile Key."), code="key_not_active")
    if signing.active_credential(key.citizen) is not None:
        raise ValidationError(_("Signing is already active for this person."), code="signing_already_active")
    return screen.open_turn(staff, key, TurnKind.SIGNING, detail={
        "presented": [presented.doc_type, presented.doc_country, presented.doc_number, presented.reason]})


def renew_document(staff: Staff, key: Key, presented: Presented, document_expiry: dt.date, *,
                   ip: str | None = None) -> CounterAction:
    """The citizen shows their renewed document (the same number: a Citizen Card keeps its NIC):
    the key's validity follows its new expiry (``identity.renew_document``: the citizen is told),
    the local civil records are brought up to date, and the action is recorded. Raises
    ``ValidationError`` for a document that is not the citizen's, a short reason, a date that is
    past or not later than the one on record, or a key that is not live."""
    from chave.identity.models import CivilRecord

    presented = check_presented(key.citizen, presented)
    citizen = key.citizen
    with transaction.atomic():
        if not identity.renew_document(key, document_expiry, by=by(staff), ip=ip, channel=CHANNEL):
            raise ValidationError(
                _("This date is not later than the document on record (valid until %(date)s): check the date on "
                  "the renewed document."), code="not_renewed",
                params={"date": formats.date_format(citizen.document_expiry, "DATE_FORMAT")})
        CivilRecord.objects.filter(doc_type=citizen.doc_type, doc_country=citizen.doc_country,
                                   doc_number=citizen.doc_number).update(document_expiry=document_expiry)
        return record_action(staff, ActionKind.RENEW, citizen, key, presented, ip=ip,
                             document_expiry=document_expiry.isoformat())


def record_new_document(staff: Staff, key: Key, presented: Presented, document_expiry: dt.date, *,
                        ip: str | None = None) -> CounterAction:
    """A foreign resident shows their renewed passport or residence document, which has a new
    number (``presented``): it becomes the citizen's document and the key's validity follows its
    expiry (``identity.replace_document``: the citizen is told), and the action is recorded (kind
    ``renew``, with the previous document). Raises ``ValidationError`` naming the form field: a
    Citizen Card, the number on record, another person's document (``presented_number``), a
    short reason, a date already past (``document_expiry``), a key that is not live."""
    presented = check_presented(key.citizen, presented, new_number=True)
    fields = {"document_taken": "presented_number", "same_document": "presented_number",
              "not_foreign": "presented_type", "document_expired": "document_expiry"}
    with transaction.atomic():
        try:
            previous = identity.replace_document(
                key, DocumentRef(presented.doc_type, presented.doc_country, presented.doc_number), document_expiry,
                by=by(staff), ip=ip, channel=CHANNEL)
        except ValidationError as error:
            raise ValidationError({fields[error.code]: [error]}) if error.code in fields else error
        return record_action(staff, ActionKind.RENEW, key.citizen, key, presented, ip=ip,
                             document_expiry=document_expiry.isoformat(), previous_document=previous)


def after_contact_confirmed(turn, *, ip: str | None = None) -> None:
    """A code turn is done: a contact change records its counter action (a registration's contacts
    are part of the registration)."""
    if "presented" in turn.detail:
        record_action(turn.staff, ActionKind.CONTACT, turn.key.citizen, turn.key, Presented(*turn.detail["presented"]),
                      ip=ip, contact=turn.contact_kind)


# --- Supervision ---------------------------------------------------------------------------

REVERSIBLE = {ActionKind.UNLOCK, ActionKind.NEW_PIN, ActionKind.REGISTER}


def may_reverse(action: CounterAction, supervisor: Staff, at: dt.datetime | None = None) -> bool:
    """Whether ``supervisor`` may reverse ``action``: a reversible kind, not yet reversed, taken
    at the supervisor's own counter on the same (Lisbon) day."""
    at = at or clock.now()
    return (supervisor.role == Role.SUPERVISOR and action.kind in REVERSIBLE and action.reversed_at is None
            and action.counter == supervisor.counter and timezone.localdate(action.at) == timezone.localdate(at))


def reverse(supervisor: Staff, action: CounterAction, reason: str, *, ip: str | None = None) -> CounterAction:
    """Undo a clerk's action of today at the supervisor's counter: an unlock blocks the key again, a new PIN's letter is
    cancelled (voiding its PIN), a registration cancels the key. Recorded on the action and in
    the audit (``counter.reverse``).

    Raises ``PermissionError`` when ``supervisor`` is not a supervisor, ``ValidationError`` when the
    action cannot be reversed (kind, already reversed, not today), the reason is too short, or the
    key has moved on so that the reversal no longer applies.
    """
    from . import letters

    if supervisor.role != Role.SUPERVISOR:
        raise PermissionError("only a supervisor reverses actions")
    reason = " ".join((reason or "").split())
    if len(reason) < policy.get("counter_reason_min_length"):
        raise ValidationError(_("Say why, in a few words."), code="reason_short")
    with transaction.atomic():
        action = CounterAction.objects.select_for_update(of=("self",)).select_related("key", "citizen").get(pk=action.pk)
        if not may_reverse(action, supervisor):
            raise ValidationError(_("Only today's unlocks, new PINs and registrations at your counter, not yet "
                                    "reversed, can be reversed."), code="not_reversible")
        key = action.key
        try:
            if action.kind == ActionKind.UNLOCK:
                if not identity.block_key(key, by=by(supervisor), channel=CHANNEL, ip=ip, reversal=action.pk):
                    raise IllegalTransition(KeyStatus.BLOCKED, KeyStatus.BLOCKED)
            elif action.kind == ActionKind.NEW_PIN:
                letters.reverse_new_pin(key.letters.get(reference=action.detail["letter"]), supervisor,
                                        reason=reason, ip=ip)
            else:
                identity.cancel_key(key, ip=ip, by=by(supervisor), channel=CHANNEL)
                for letter in key.letters.exclude(status__in=["cancelled", "posted"]):
                    letters.cancel_letter(letter, supervisor, reason=reason, ip=ip, record=False)
        except IllegalTransition:
            raise ValidationError(_("The key has changed since: this action can no longer be reversed."),
                                  code="moved_on")
        action.reversed_at, action.reversed_by, action.reversal_reason = clock.now(), supervisor, reason
        action.save(update_fields=["reversed_at", "reversed_by", "reversal_reason"])
        audit.record("counter.reverse", outcome="ok", citizen=action.citizen, channel=CHANNEL, ip=ip,
                     staff=supervisor.username, counter=supervisor.counter, action=action.pk, kind=action.kind,
                     reason=reason)
    return action


@dataclass(frozen=True)
class ReportRow:
    counter: str
    kind: str
    count: int
    reversed: int

    @property
    def label(self) -> str:
        return ActionKind(self.kind).label


def daily_report(day: dt.date) -> list[ReportRow]:
    """Actions per counter and kind on ``day`` (Lisbon), with how many were reversed."""
    tz = timezone.get_current_timezone()
    start = timezone.make_aware(dt.datetime.combine(day, dt.time.min), tz)
    end = start + dt.timedelta(days=1)
    rows = (CounterAction.objects.filter(at__gte=start, at__lt=end)
            .values("counter", "kind").annotate(n=Count("id")).order_by("counter", "kind"))
    reversed_ = {(r["counter"], r["kind"]): r["n"] for r in
                 CounterAction.objects.filter(at__gte=start, at__lt=end, reversed_at__isnull=False)
                 .values("counter", "kind").annotate(n=Count("id"))}
    return [ReportRow(r["counter"], r["kind"], r["n"], reversed_.get((r["counter"], r["kind"]), 0)) for r in rows]
