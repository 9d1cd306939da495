"""Queue and send messages: durable, retried with backoff, never sent twice.

:func:`queue_message` writes the message and its task in the caller's database transaction, so
a message exists exactly when what caused it committed. The worker runs :func:`send_message`:
it claims the message (``queued → sending``) in a transaction of its own before calling the
provider, so two workers can never both send it. A temporary gateway failure puts it back to
``queued`` with the next attempt after a growing backoff, until it succeeds, the attempts run out
or the message (a code) has expired. A worker that dies mid-send leaves the message ``sending``:
we prefer not to risk a duplicate; the citizen can ask for a new code. :func:`recover_stalled`
(run by every worker at start and every ``delivery_sweep_seconds``, and by housekeeping) then
says so: a claim older than ``delivery_sending_timeout_seconds`` becomes ``interrupted``, and a
queued message whose task was lost with a dead worker (or a database restart) gets a new one.

The clear body exists only in the worker's memory while it is being handed to the provider: it
is sealed at rest until then and wiped once the message is sent, failed or expired. Nothing this
module writes to the log, the audit or the task results carries it.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid

from cryptography.fernet import InvalidToken
from django.db import models, transaction

from chave import clock, policy
from chave.audit import services as audit
from chave.compiled import Compiled, Inserter

from . import providers, sealing
from .messages import notice_message
from .models import Channel, MessageStatus, OutboundMessage

_NEW_MESSAGE = Inserter(OutboundMessage)
# The worker's claim of a queued message and its usual end (sent), compiled once.
_LOCKED = Compiled(lambda pk: OutboundMessage.objects.select_for_update().filter(pk=pk)[:1], uuid.UUID)
_CLAIM = Compiled(lambda pk, attempts, provider, now: OutboundMessage.objects.filter(pk=pk), uuid.UUID, int, str,
                  dt.datetime, update=lambda pk, attempts, provider, now: {
                      "status": MessageStatus.SENDING, "attempts": attempts, "provider": provider,
                      "sending_since": now})
_SENT = Compiled(lambda pk, at, ref, error: OutboundMessage.objects.filter(pk=pk, status=MessageStatus.SENDING),
                 uuid.UUID, dt.datetime, str, str, update=lambda pk, at, ref, error: {
                     "status": MessageStatus.SENT, "sent_at": at, "body_sealed": "", "provider_ref": ref,
                     "last_error": error, "next_attempt_at": None})

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
    """Queue one message for the worker, inside the caller's transaction.

    The message row and its task row are written together (in the caller's transaction when it has
    one, in a transaction of their own otherwise): if the caller's transaction rolls back,
    neither exists and nothing is ever sent. Raises ``ValueError`` for an unknown channel.
    """
    from .tasks import deliver

    if channel not in Channel.values:
        raise ValueError(f"unknown delivery channel: {channel!r}")
    with transaction.atomic(savepoint=False):
        message = _NEW_MESSAGE.create(
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


def _give_up(message: OutboundMessage, status: str, error: str) -> str:
    """Close a message that was never handed to a provider (claim transaction): wipe its body."""
    message.status, message.body_sealed, message.last_error = status, "", error[:300]
    message.save(update_fields=["status", "body_sealed", "last_error"])
    audit.record("message.delivery", outcome=str(status), citizen=message.citizen, channel=message.channel,
                 attempts=message.attempts, provider=message.provider)
    return message.status


def _without_digits_of(body: str, error: str) -> str:
    """``error`` with every run of 4+ digits of ``body`` masked, in case a gateway quotes the text."""
    for run in set(re.findall(r"\d{4,}", body)):
        error = error.replace(run, "•" * len(run))
    return error


def send_message(message_id: str) -> str:
    """Send one queued message through its channel's provider; returns the resulting status.

    Contract: the provider is called at most once per claim, and a message is claimed only from
    ``queued``, so calling this twice, or from two workers at once, sends it once. Outcomes:

    - ``sent``: the provider accepted it; the sealed body is wiped.
    - ``queued``: a temporary failure (gateway down, 5xx, throttled); a new task is deferred by
      the backoff of ``delivery_backoff_seconds``, unless the attempts (``delivery_max_attempts``)
      are spent or the message would expire first.
    - ``failed``: a permanent failure, the attempts ran out, the channel is off or misconfigured,
      the body cannot be unsealed, or the provider raised something unexpected (we cannot know
      whether it went out, so we do not risk sending it twice).
    - ``expired``: a code message whose code expired before it could be sent; never sent.

    It never raises for a delivery problem, so that no exception text (which might quote the
    body) reaches the task results; an unknown ``message_id`` returns ``"missing"``.
    """
    from .tasks import deliver

    now = clock.now()
    try:
        message_pk = uuid.UUID(str(message_id))
    except ValueError:
        return "missing"
    with transaction.atomic():
        message = _LOCKED.first(message_pk)
        if message is None or message.status != MessageStatus.QUEUED:
            return message.status if message else "missing"
        if message.expires_at and message.expires_at <= now:
            return _give_up(message, MessageStatus.EXPIRED, "expired before it could be sent")
        try:
            provider = providers.provider_for(message.channel)
        except Exception as exc:  # a misconfigured provider setting: say which, keep the worker going
            log.error("delivery of message %s: provider for %s is misconfigured (%s)",
                      message.pk, message.channel, exc.__class__.__name__)
            return _give_up(message, MessageStatus.FAILED, f"provider misconfigured: {exc.__class__.__name__}")
        if provider is None:
            return _give_up(message, MessageStatus.FAILED, "channel is off")
        try:
            body = sealing.unseal(message.body_sealed)
        except InvalidToken:
            # Sealed under another CHAVE_MESSAGE_KEY: nobody can read it any more.
            return _give_up(message, MessageStatus.FAILED, "sealed body unreadable (message key changed?)")
        message.status = MessageStatus.SENDING
        message.attempts += 1
        message.provider = provider.name
        message.sending_since = now
        _CLAIM.update(message.pk, message.attempts, message.provider, now)

    # Outside any transaction: a slow gateway must not hold database locks.
    try:
        reference = provider.submit_message(message.destination, body, message.subject)
    except providers.TemporaryFailure as exc:
        outcome, error = "retry", str(exc)
    except providers.PermanentFailure as exc:
        outcome, error = "failed", str(exc)
    except Exception as exc:
        # Only the class name: an exception's text may quote the body (and so the code).
        outcome, error = "failed", f"unexpected {exc.__class__.__name__} from the provider"
    else:
        outcome, error = "sent", ""
    error = _without_digits_of(body, error)

    finished = clock.now()
    with transaction.atomic():
        message.last_error = error[:300]
        if outcome == "sent":
            message.status, message.sent_at, message.body_sealed = MessageStatus.SENT, finished, ""
            message.provider_ref = str(reference or "")[:128]
        elif outcome == "retry":
            next_attempt = finished + _backoff(message.attempts)
            if message.attempts >= policy.get("delivery_max_attempts"):
                message.status, message.body_sealed = MessageStatus.FAILED, ""
            elif message.expires_at and message.expires_at <= next_attempt:
                # The code would be dead before the next try: stop now rather than send it late.
                message.status, message.body_sealed = MessageStatus.EXPIRED, ""
            else:
                message.status, message.next_attempt_at = MessageStatus.QUEUED, next_attempt
                deliver.using(run_after=next_attempt).enqueue(str(message.pk))
        else:
            message.status, message.body_sealed = MessageStatus.FAILED, ""
        if outcome == "sent" and message.next_attempt_at is None:  # the usual end, its statement compiled once
            updated = _SENT.update(message.pk, message.sent_at, message.provider_ref, message.last_error)
        else:
            updated = OutboundMessage.objects.filter(pk=message.pk, status=MessageStatus.SENDING).update(
                status=message.status, sent_at=message.sent_at, body_sealed=message.body_sealed,
                provider_ref=message.provider_ref, last_error=message.last_error,
                next_attempt_at=message.next_attempt_at,
            )
        if not updated:
            # Only the claimer finishes a message in "sending"; should anything else have closed it
            # meanwhile, its word stands: change nothing and queue no retry.
            transaction.set_rollback(True)
            return OutboundMessage.objects.filter(pk=message.pk).values_list("status", flat=True).first() or "missing"
        if outcome != "sent":
            log.warning("delivery of message %s by %s: %s (%s)", message.pk, message.provider, message.status, error)
            audit.record("message.delivery",
                         outcome="retry" if message.status == MessageStatus.QUEUED else str(message.status),
                         citizen=message.citizen, channel=message.channel, attempts=message.attempts,
                         provider=message.provider)
    return str(message.status)


INTERRUPTED_ERROR = "the worker stopped while handing it to the gateway: whether it arrived is unknown"


def recover_stalled() -> dict[str, int]:
    """Close what dead workers left behind; returns how many messages it ``interrupted`` and ``requeued``.

    - A message ``sending`` for longer than ``delivery_sending_timeout_seconds`` (far longer than a
      gateway call may take) was being handed over when its worker died. The gateway may have
      taken it: it becomes ``interrupted`` and is never sent again (no code twice); its body is
      wiped and the audit says so (``message.delivery``, outcome ``interrupted``).
    - A message ``queued`` and due for that long with no task waiting to send it lost its task (a
      worker killed between claiming the task and the message, or a task marked failed while the
      database was away): it gets a new task. Sending stays at most once (:func:`send_message`
      claims only from ``queued``), so a task too many costs nothing.

    Safe to run anywhere, any number of times, on several instances at once.
    """
    from django_tasks.base import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    from .tasks import deliver

    now = clock.now()
    stale = now - dt.timedelta(seconds=policy.get("delivery_sending_timeout_seconds"))
    interrupted = requeued = 0
    for message in OutboundMessage.objects.filter(status=MessageStatus.SENDING, sending_since__lte=stale):
        with transaction.atomic():
            won = OutboundMessage.objects.filter(pk=message.pk, status=MessageStatus.SENDING,
                                                 sending_since__lte=stale).update(
                status=MessageStatus.INTERRUPTED, body_sealed="", last_error=INTERRUPTED_ERROR)
            if won:
                interrupted += 1
                log.warning("delivery of message %s by %s: interrupted (%s)", message.pk, message.provider,
                            INTERRUPTED_ERROR)
                audit.record("message.delivery", outcome=str(MessageStatus.INTERRUPTED), citizen=message.citizen,
                             channel=message.channel, attempts=message.attempts, provider=message.provider)
    overdue = OutboundMessage.objects.filter(status=MessageStatus.QUEUED).filter(
        models.Q(next_attempt_at__lte=stale) | models.Q(next_attempt_at__isnull=True, created_at__lte=stale))
    waiting = DBTaskResult.objects.filter(status=TaskResultStatus.READY, task_path=deliver.module_path)
    for message_id in overdue.values_list("pk", flat=True):
        if not waiting.filter(args_kwargs__args__0=str(message_id)).exists():
            deliver.enqueue(str(message_id))
            requeued += 1
    if requeued:
        log.warning("delivery: %d queued messages had lost their task; queued again", requeued)
    return {"interrupted": interrupted, "requeued": requeued}
