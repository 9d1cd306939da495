"""The citizen screen of a desk: where the citizen, not the clerk, types a code or chooses a PIN.

- :func:`start_pairing` gives the clerk a one-time link (``counter_screen_pairing_seconds``) to
  open on the device that faces the citizen; :func:`pair` turns it into a device secret (a
  cookie; only its hash is kept). Pairing again replaces the desk's earlier screen.
- :func:`open_turn` puts one task on the screen (``counter_turn_seconds``; a new turn cancels the
  open one): type the code sent to a contact, or choose the PIN. The screen submits to
  :func:`submit_code` / :func:`submit_pin`; the clerk's page sees only whether the turn is done.

The clerk never sees the code or the PIN: they go from the citizen's phone and fingers to the
screen, then to ``identity`` (hashes only). Errors the citizen can act on are ``ValidationError``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from chave import clock, policy
from chave.audit import services as audit
from chave.codes.services import VerifyResult
from chave.identity import contacts
from chave.identity import services as identity
from chave.identity.models import Key

from .models import CitizenScreen, CitizenTurn, Staff, TurnKind, TurnStatus
from .services import CHANNEL


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class Pairing:
    screen: CitizenScreen
    token: str  # goes in the one-time link; only its hash is kept


def start_pairing(staff: Staff) -> Pairing:
    """A one-time link to pair a citizen screen with ``staff``'s desk."""
    token = secrets.token_urlsafe(18)
    now = clock.now()
    screen = CitizenScreen.objects.create(
        staff=staff, pairing_hash=_hash(token), created_at=now,
        pairing_expires_at=now + dt.timedelta(seconds=policy.get("counter_screen_pairing_seconds")),
    )
    audit.record("counter.screen_pairing", outcome="started", channel=CHANNEL, staff=staff.username)
    return Pairing(screen, token)


def pair(token: str, *, ip: str | None = None) -> tuple[CitizenScreen, str] | None:
    """Use a pairing link once: returns the screen and the device secret (for its cookie), or None
    when the link is unknown, used or expired. The desk's other screens stop working."""
    now = clock.now()
    with transaction.atomic():
        screen = CitizenScreen.objects.select_for_update().filter(pairing_hash=_hash(token or "")).first()
        if screen is None or screen.pairing_expires_at <= now:
            return None
        secret = secrets.token_urlsafe(32)
        screen.pairing_hash, screen.secret_hash, screen.paired_at = "", _hash(secret), now
        screen.save(update_fields=["pairing_hash", "secret_hash", "paired_at"])
        CitizenScreen.objects.filter(staff=screen.staff).exclude(pk=screen.pk).delete()
        audit.record("counter.screen_pairing", outcome="paired", channel=CHANNEL, ip=ip, staff=screen.staff.username)
    return screen, secret


def screen_of(secret: str) -> CitizenScreen | None:
    if not secret:
        return None
    return CitizenScreen.objects.select_related("staff").filter(secret_hash=_hash(secret)).first()


def desk_screen(staff: Staff) -> CitizenScreen | None:
    return CitizenScreen.objects.filter(staff=staff, paired_at__isnull=False).first()


def require_screen(staff: Staff) -> CitizenScreen:
    """The desk's paired citizen screen; raises ``ValidationError`` when there is none."""
    screen = desk_screen(staff)
    if screen is None:
        raise ValidationError(_("Pair the citizen screen of your desk first."), code="no_screen")
    return screen


def open_turn(staff: Staff, key: Key, kind: str, *, contact_kind: str = "", contact_value: str = "",
              transaction_id: str = "", detail: dict | None = None) -> CitizenTurn:
    """Put a task on the desk's citizen screen. Raises ``ValidationError`` when no screen is paired."""
    screen = require_screen(staff)
    now = clock.now()
    with transaction.atomic():
        CitizenTurn.objects.filter(screen=screen, status=TurnStatus.OPEN).update(status=TurnStatus.CANCELLED)
        return CitizenTurn.objects.create(
            screen=screen, staff=staff, key=key, kind=kind, contact_kind=contact_kind, contact_value=contact_value,
            transaction=transaction_id, detail=detail or {}, created_at=now,
            expires_at=now + dt.timedelta(seconds=policy.get("counter_turn_seconds")),
        )


def current_turn(screen: CitizenScreen) -> CitizenTurn | None:
    return (CitizenTurn.objects.select_related("key__citizen", "staff")
            .filter(screen=screen, status=TurnStatus.OPEN, expires_at__gt=clock.now()).first())


def _close(turn: CitizenTurn) -> bool:
    """Mark the turn done, once (a conditional update decides between two submissions)."""
    return bool(CitizenTurn.objects.filter(pk=turn.pk, status=TurnStatus.OPEN).update(
        status=TurnStatus.DONE, done_at=clock.now()))


def submit_code(turn: CitizenTurn, code: str, *, ip: str | None = None) -> VerifyResult:
    """The citizen typed the code their contact received: on success the contact is verified (or
    replaces the old one) and the turn is done; the result says what went wrong otherwise."""
    if turn.kind != TurnKind.CODE:
        raise ValueError("not a code turn")
    result = contacts.confirm(turn.key, turn.contact_kind, turn.contact_value, transaction_id=turn.transaction,
                              code=code, ip=ip)
    if result.ok:
        with transaction.atomic():
            if _close(turn):
                from .services import after_contact_confirmed

                after_contact_confirmed(turn, ip=ip)
    return result


def submit_pin(turn: CitizenTurn, pin: str, pin_again: str, *, ip: str | None = None) -> None:
    """The citizen chose their PIN. Raises ``ValidationError`` when the two differ or the PIN breaks
    the rules (the citizen corrects it on the screen)."""
    if turn.kind != TurnKind.PIN:
        raise ValueError("not a PIN turn")
    if not secrets.compare_digest(str(pin).encode(), str(pin_again).encode()):
        raise ValidationError(_("The two PINs differ. Type the same PIN twice."), code="pin_mismatch")
    # The first PIN of a key being registered: the citizen is told when the key is activated.
    identity.change_pin(turn.key, pin, ip=ip, reason=f"citizen at counter (staff:{turn.staff.username})",
                        channel=CHANNEL, notify=False)
    with transaction.atomic():
        if _close(turn):
            from .registration import pin_chosen

            pin_chosen(turn)


def submit_signing_pin(turn: CitizenTurn, pin: str, pin_again: str, *, ip: str | None = None) -> None:
    """The citizen chose their signing PIN: signing is activated as online (same rules, audit
    ``signing.activate`` and notice), by the member of staff who opened the turn, and the counter
    action is recorded, in one transaction with closing the turn (two submissions activate once).
    Raises ``ValidationError`` when the two PINs differ or the PIN breaks the rules (the citizen
    corrects it on the screen; the turn stays open), or signing cannot be activated."""
    from chave.signing import services as signing

    from .models import ActionKind
    from .services import Presented, by, record_action

    if turn.kind != TurnKind.SIGNING:
        raise ValueError("not a signing turn")
    if not secrets.compare_digest(str(pin).encode(), str(pin_again).encode()):
        raise ValidationError(_("The two PINs differ. Type the same PIN twice."), code="pin_mismatch")
    with transaction.atomic():
        if not _close(turn):
            raise ValidationError(_("This is no longer asked of you. Ask at the desk."), code="turn_closed")
        activated = signing.activate_signing(turn.key, pin, by=by(turn.staff), ip=ip, channel=CHANNEL)
        record_action(turn.staff, ActionKind.SIGNING, turn.key.citizen, turn.key, Presented(*turn.detail["presented"]),
                      ip=ip, credential=activated.credential.credential_id)
