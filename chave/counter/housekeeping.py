"""Key housekeeping, run periodically by ``chave housekeeping`` (see README.md for scheduling).

1. Remind citizens ``key_reminder_days`` before their key expires (``valid_until``) or is revoked
   for disuse (last activity + ``inactivity_revoke_days``), on their verified contacts.
   A key whose document the civil registry shows renewed is renewed first
   (:func:`chave.identity.services.renew_from_registry`): its validity follows the new document.
2. Expire keys past their validity (:func:`chave.identity.services.expire_keys`).
3. Revoke keys unused for ``inactivity_revoke_days`` (:func:`chave.identity.services.revoke_unused_keys`;
   0 switches it and its reminders off).
4. Cancel registrations left pending for ``pending_key_days``, releasing the contacts they hold
   (:func:`chave.identity.services.cancel_abandoned_registrations`).
5. End single sign-on sessions whose browser session has lapsed, so their portals receive a
   back-channel logout (:func:`chave.oidc.logout.end_lapsed_sso_sessions`).
6. Close deliveries (messages, back-channel logouts) that dead workers left half-done
   (:func:`chave.ops.recovery.recover_stalled`).
7. Forget rows that no longer count: throttle events and the OpenID Connect replay caches
   (:func:`chave.ops.expiry.forget_expired`; the delivery worker's sweep does it too).

Idempotent and safe on several instances at once: keys change state under their row lock after
re-reading it, and a reminder is sent in the transaction that inserts its
:class:`~.models.KeyReminder` row, whose unique constraint lets only one run insert it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

from django.db import IntegrityError, transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from chave import clock, policy
from chave.audit import services as audit
from chave.delivery import services as delivery
from chave.app import services as app
from chave.identity import services as identity
from chave.identity.models import LIVE_STATUSES, Key, KeyStatus
from chave.oidc.logout import end_lapsed_sso_sessions
from chave.ops import expiry as lapsed_rows, recovery

from .models import KeyReminder


@dataclass(frozen=True)
class HousekeepingResult:
    expiry_reminders: int
    inactivity_reminders: int
    expired: int
    revoked: int
    abandoned_registrations: int
    sso_sessions_ended: int
    app_records_forgotten: int  # the Chave app's expired inbox items, nonces, unconfirmed devices
    stalled_deliveries_closed: int  # messages interrupted or requeued, back-channel logouts resent or failed
    expired_records_forgotten: int  # throttle events, replay caches (chave.ops.expiry)

    def as_dict(self) -> dict:
        return asdict(self)


def _remind(key: Key, kind: str, due: dt.date) -> bool:
    """Send one reminder, once: False when another run (or an earlier one) sent it."""
    try:
        with transaction.atomic():
            KeyReminder.objects.create(key=key, kind=kind, due=due, sent_at=clock.now())
            event = "key_expiring" if kind == KeyReminder.Kind.EXPIRY else "key_unused"
            moment = timezone.make_aware(dt.datetime.combine(due, dt.time(12)))
            delivery.notify(key.citizen, event, until=moment)
            audit.record("key.reminder", outcome="sent", citizen=key.citizen, kind=kind, due=due.isoformat())
    except IntegrityError:
        return False
    return True


def send_reminders() -> tuple[int, int]:
    today = clock.today()
    ahead = dt.timedelta(days=int(policy.get("key_reminder_days")))
    expiring = Key.objects.filter(status__in=[KeyStatus.ACTIVE, KeyStatus.LOCKED, KeyStatus.BLOCKED],
                                  valid_until__gte=today, valid_until__lte=today + ahead).select_related("citizen")
    expiry = sum(_remind(key, KeyReminder.Kind.EXPIRY, key.valid_until) for key in expiring)
    inactivity = 0
    days = int(policy.get("inactivity_revoke_days") or 0)
    if days > 0:
        now = clock.now()
        window_start = now - dt.timedelta(days=days)  # older than this: revoked now, not reminded
        unused = (Key.objects.filter(status__in=LIVE_STATUSES)
                  .annotate(seen=Coalesce("last_used_at", "activated_at", "created_at"))
                  .filter(seen__gt=window_start, seen__lte=window_start + ahead).select_related("citizen"))
        for key in unused:
            due = timezone.localdate(key.last_activity + dt.timedelta(days=days))
            inactivity += _remind(key, KeyReminder.Kind.INACTIVITY, due)
    return expiry, inactivity


def run() -> HousekeepingResult:
    """One pass of every job; returns what it did (zeros when there was nothing to do). Also wipes
    the previous PINs new-PIN letters kept for a same-day reversal (:func:`.letters.forget_previous_pins`)."""
    from .letters import forget_previous_pins

    forget_previous_pins()
    identity.renew_from_registry()  # a renewed document first: its key is then neither reminded nor expired
    expiry, inactivity = send_reminders()
    return HousekeepingResult(expiry_reminders=expiry, inactivity_reminders=inactivity,
                              expired=identity.expire_keys(), revoked=identity.revoke_unused_keys(),
                              abandoned_registrations=identity.cancel_abandoned_registrations(),
                              sso_sessions_ended=end_lapsed_sso_sessions(),
                              app_records_forgotten=sum(app.housekeeping().values()),
                              stalled_deliveries_closed=sum(recovery.recover_stalled().values()),
                              expired_records_forgotten=lapsed_rows.forget_expired())
