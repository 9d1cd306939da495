"""Issue and verify one-time codes (``domain.md``: one-time security codes).

:func:`issue_code` makes a 6-digit code from the CSPRNG, keeps only its keyed hash, invalidates
the transaction's earlier codes and queues the message, all in one database transaction; it
refuses with a reason when the resend cooldown, the per-transaction send limit, the send caps
(per key, destination, client IP) or the SMS country allowlist say no.

:func:`verify_code` checks a submission against the newest code of the transaction: single use
under concurrent submissions (a conditional UPDATE decides the one winner), three wrong entries
spend the code. Neither function ever returns or logs the code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import phonenumbers
from django.conf import settings
from django.db import transaction as db_transaction
from django.db.models import F

from chave import clock, policy
from chave.audit import services as audit
from chave.compiled import Compiled, Inserter
from chave.delivery import messages as message_texts
from chave.delivery import services as delivery
from chave.identity.models import Key
from chave.identity.validation import mobile_country
from chave.throttle import services as throttle

from .models import OneTimeCode


@dataclass(frozen=True)
class IssueResult:
    sent: bool
    reason: str = "sent"  # sent | cooldown | too_many_sends | rate_limited | country_not_allowed
    expires_at: dt.datetime | None = None
    retry_at: dt.datetime | None = None
    sends_left: int = 0


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    # ok | wrong | malformed | expired | used | invalidated | spent | no_code
    reason: str
    attempts_left: int = 0


def _code_hash(purpose: str, transaction: str, code: str) -> str:
    key = (settings.CHAVE_PIN_PEPPER + "/one-time-code").encode()
    return hmac.new(key, f"{purpose}\x00{transaction}\x00{code}".encode(), hashlib.sha256).hexdigest()


def _new_code() -> str:
    digits = policy.get("code_digits")
    return str(secrets.randbelow(10**digits)).zfill(digits)


def _sms_country(destination: str) -> str | None:
    try:
        return mobile_country(destination)
    except phonenumbers.NumberParseException:  # not a number: no country allows it
        return None


def _newest_first(purpose: str, transaction: str):
    return OneTimeCode.objects.filter(purpose=purpose, transaction=transaction).order_by("-created_at", "-id")


_NEW = Inserter(OneTimeCode)
# A right code is used once: the one request that marks it used wins.
_USE = Compiled(lambda pk, now: OneTimeCode.objects.filter(pk=pk, used_at__isnull=True, invalidated_at__isnull=True,
                                                           expires_at__gt=now),
                int, dt.datetime, update=lambda pk, now: {"used_at": now})
_SENT = Compiled(_newest_first, str, str)
_LATEST = Compiled(lambda purpose, transaction: _newest_first(purpose, transaction)[:1], str, str)
# The code a candidate is checked against, its row locked, with the key and citizen it is for.
_LATEST_LOCKED = Compiled(lambda purpose, transaction: _newest_first(purpose, transaction)
                          .select_for_update().select_related("key__citizen")[:1], str, str)


def sent_codes(purpose: str, transaction: str) -> list[OneTimeCode]:
    """Every code sent for ``transaction``, newest first (at most ``code_max_sends_per_transaction``)."""
    return _SENT.all(purpose, str(transaction))


def latest_code(purpose: str, transaction: str) -> OneTimeCode | None:
    return _LATEST.first(purpose, str(transaction))


def issue_code(
    key: Key,
    *,
    purpose: str,
    transaction: str,
    channel: str,
    destination: str,
    ip: str | None = None,
    portal: str = "",
    language: str | None = None,
    documents: str = "",
    task: str = "",
    client_id: str = "",
) -> IssueResult:
    """Send a new code for ``transaction`` to ``destination`` over ``channel``.

    Refusals come back as an :class:`IssueResult` with ``sent=False``, a reason and, where it
    applies, when to try again; they are audited. Nothing is written on a refusal except the
    audit event. ``documents`` names what a signing code authorises, in the message; ``task``
    names the change to the key a personal-area code confirms (``chave.delivery.messages.TASKS``).
    ``client_id``: an integrator asks on the citizen's behalf (the signing APIs); its send limit
    replaces the per-address one, since its one server address speaks for all its citizens.
    """
    now = clock.now()
    max_sends = policy.get("code_max_sends_per_transaction")
    cooldown = dt.timedelta(seconds=policy.get("code_resend_cooldown_seconds"))
    with db_transaction.atomic(savepoint=False):  # a refusal returns, it never raises to be caught
        # Serialise issues for one key (PostgreSQL; SQLite's IMMEDIATE transactions already do).
        key = Key.locked(key.pk)
        earlier = sent_codes(purpose, transaction)
        refusal: IssueResult | None = None
        if len(earlier) >= max_sends:
            refusal = IssueResult(False, "too_many_sends")
        elif earlier and earlier[0].created_at + cooldown > now:
            refusal = IssueResult(False, "cooldown", retry_at=earlier[0].created_at + cooldown,
                                  sends_left=max_sends - len(earlier))
        elif channel == "sms" and _sms_country(destination) not in policy.get("sms_country_allowlist"):
            refusal = IssueResult(False, "country_not_allowed")
        else:
            decision = throttle.hit(
                ("code_send_per_key", str(key.pk)),
                ("code_send_per_destination", f"{channel}:{destination}"),
                ("code_send_per_client", client_id) if client_id else ("code_send_per_ip", ip or ""),
            )
            if not decision.allowed:
                refusal = IssueResult(False, "rate_limited", retry_at=decision.retry_at)
        if refusal is not None:
            audit.record("code.send", outcome=refusal.reason, citizen=key.citizen, channel=channel, ip=ip,
                         purpose=purpose)
            return refusal

        code = _new_code()
        expires_at = now + policy.code_lifetime(purpose)
        if any(c.used_at is None and c.invalidated_at is None for c in earlier):  # the new code replaces it
            OneTimeCode.objects.filter(
                purpose=purpose, transaction=transaction, used_at__isnull=True, invalidated_at__isnull=True
            ).update(invalidated_at=now)
        _NEW.create(
            key=key,
            purpose=purpose,
            transaction=transaction,
            channel=channel,
            destination=destination,
            code_hash=_code_hash(purpose, transaction, code),
            created_at=now,
            expires_at=expires_at,
        )
        text = message_texts.code_message(
            purpose=purpose, code=code, portal=portal, lifetime=policy.code_lifetime(purpose),
            language=language or key.citizen.language, documents=documents, task=task, channel=channel,
            expires_at=expires_at,
        )
        delivery.queue_message(
            channel=channel, destination=destination, subject=text.subject, body=text.body,
            redacted=text.redacted, citizen=key.citizen, kind="code", expires_at=expires_at,
        )
        audit.record("code.send", outcome="sent", citizen=key.citizen, channel=channel, ip=ip, purpose=purpose)
        return IssueResult(True, "sent", expires_at=expires_at, retry_at=now + cooldown,
                           sends_left=max_sends - len(earlier) - 1)


def verify_code(*, purpose: str, transaction: str, submitted, ip: str | None = None) -> VerifyResult:
    """Check ``submitted`` against the newest code of ``transaction`` for ``purpose``.

    At most one concurrent submission of the right code succeeds; a wrong one counts towards
    ``code_max_wrong``, after which the code is spent. A malformed submission counts nothing.
    """
    digits = policy.get("code_digits")
    max_wrong = policy.get("code_max_wrong")
    candidate = str(submitted or "").strip().replace(" ", "")
    if not (candidate.isascii() and candidate.isdigit() and len(candidate) == digits):
        return VerifyResult(False, "malformed")
    now = clock.now()
    # No savepoint: nothing here catches an error and goes on; a caller may make this check and
    # what follows from it (a login's completion) one transaction.
    with db_transaction.atomic(savepoint=False):
        row = _LATEST_LOCKED.first(purpose, str(transaction))
        if row is None:
            return VerifyResult(False, "no_code")
        citizen = row.key.citizen
        if row.used_at is not None:
            result = VerifyResult(False, "used")
        elif row.invalidated_at is not None:
            result = VerifyResult(False, "spent" if row.wrong_attempts >= max_wrong else "invalidated")
        elif row.expires_at <= now:
            result = VerifyResult(False, "expired")
        elif hmac.compare_digest(_code_hash(purpose, transaction, candidate), row.code_hash):
            won = _USE.update(row.pk, now)
            result = VerifyResult(True, "ok") if won == 1 else VerifyResult(False, "used")
        else:
            OneTimeCode.objects.filter(pk=row.pk, wrong_attempts__lt=max_wrong).update(
                wrong_attempts=F("wrong_attempts") + 1
            )
            row.refresh_from_db(fields=["wrong_attempts"])
            left = max(0, max_wrong - row.wrong_attempts)
            if left == 0:
                OneTimeCode.objects.filter(pk=row.pk, invalidated_at__isnull=True).update(invalidated_at=now)
            result = VerifyResult(False, "wrong" if left else "spent", attempts_left=left)
        audit.record("code.verify", outcome=result.reason, citizen=citizen, channel=row.channel, ip=ip,
                     purpose=purpose)
        return result
