"""Queue and send messages: durable, retried with backoff, never sent twice.

:func:`queue_message` writes the message and its task in the caller's database transaction, so
a message exists exactly when what caused it committed. The worker runs :func:`send_message`:
it claims the message (``queued → sending``) in a transaction of its own before calling the
provider, so two workers can never both send it. A temporary gateway failure puts it back to
``queued`` with the next attempt after a growing backoff, until it succeeds, the attempts run out
or the message (a code) has expired. A worker that dies mid-send leaves the message ``sending``:
we prefer not to risk a duplicate; the citizen can ask for a new code.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction

from chave import clock, policy
from chave.audit import services as audit

from . import providers, sealing
from .messages import notice_message
from .models import MessageStatus, OutboundMessage

log = logging.getLogger(__name__)


def queue_message(
    *,
    channel: str,
    destination: str,
    body: str,
    redacted: str,
    subject: str = "",
    citizen=None,
    kind: str = "notice",
    expires_at: dt.datetime | None = None,
) -> OutboundMessage:
    """Queue one message for the worker, inside the caller's transaction."""
    from .tasks import deliver

    message = OutboundMessage.objects.create(
        channel=channel,
        destination=destination,
        kind=kind,
        subject=subject[:200],
        body_sealed=sealing.seal(body),
        body_redacted=redacted,
        citizen=citizen,
        created_at=clock.now(),
        expires_at=expires_at,
    )
    deliver.enqueue(str(message.pk))
    return message


def notify(citizen, event: str, *, until: dt.datetime | None = None) -> int:
    """Tell the citizen of a security event on each verified SMS / e-mail contact. Returns how many."""
    from chave.identity.models import ContactKind

    text = notice_message(event, language=citizen.language, until=until)
    enabled = providers.enabled_channels()
    count = 0
    key = getattr(citizen, "key", None)
    if key is None:
        return 0
    for contact in key.contacts.filter(verified_at__isnull=False):
        channel = {ContactKind.MOBILE: "sms", ContactKind.EMAIL: "email", ContactKind.X: "x"}[contact.kind]
        if channel not in enabled:
            continue
        queue_message(channel=channel, destination=contact.value, subject=text.subject, body=text.body,
                      redacted=text.redacted, citizen=citizen, kind="notice")
        count += 1
    return count


def _backoff(attempts: int) -> dt.timedelta:
    steps = policy.get("delivery_backoff_seconds")
    return dt.timedelta(seconds=steps[min(attempts, len(steps)) - 1])


def send_message(message_id: str) -> str:
    """Send one queued message through its channel's provider; returns the resulting status."""
    from .tasks import deliver

    now = clock.now()
    with transaction.atomic():
        message = OutboundMessage.objects.select_for_update().filter(pk=message_id).first()
        if message is None or message.status != MessageStatus.QUEUED:
            return message.status if message else "missing"
        if message.expires_at and message.expires_at <= now:
            message.status, message.body_sealed = MessageStatus.EXPIRED, ""
            message.save(update_fields=["status", "body_sealed"])
            return message.status
        provider = providers.provider_for(message.channel)
        if provider is None:
            message.status, message.body_sealed, message.last_error = MessageStatus.FAILED, "", "channel is off"
            message.save(update_fields=["status", "body_sealed", "last_error"])
            return message.status
        message.status = MessageStatus.SENDING
        message.attempts += 1
        message.provider = provider.name
        message.save(update_fields=["status", "attempts", "provider"])
    body = sealing.unseal(message.body_sealed)

    try:
        reference = provider.submit_message(message.destination, body, message.subject)
    except providers.TemporaryFailure as exc:
        outcome, error = "retry", str(exc)
    except providers.PermanentFailure as exc:
        outcome, error = "failed", str(exc)
    else:
        outcome, error = "sent", ""

    with transaction.atomic():
        message.last_error = error[:300]
        if outcome == "sent":
            message.status, message.sent_at, message.body_sealed = MessageStatus.SENT, clock.now(), ""
            message.provider_ref = (reference or "")[:128]
        elif outcome == "retry" and message.attempts < policy.get("delivery_max_attempts"):
            message.status = MessageStatus.QUEUED
            message.next_attempt_at = clock.now() + _backoff(message.attempts)
            deliver.using(run_after=message.next_attempt_at).enqueue(str(message.pk))
        else:
            message.status, message.body_sealed = MessageStatus.FAILED, ""
        message.save()
        if outcome != "sent":
            log.warning("delivery of message %s by %s: %s (%s)", message.pk, message.provider, outcome, error)
            audit.record("message.delivery", outcome=outcome if message.status != MessageStatus.FAILED else "failed",
                         citizen=message.citizen, channel=message.channel, attempts=message.attempts,
                         provider=message.provider)
    return message.status
