"""Append security events to the audit log, each a link of its hash chain (:mod:`.chain`)."""

from __future__ import annotations

import functools
import ipaddress
import re

from django.db import transaction

from chave import clock
from chave.compiled import Inserter

from . import chain
from .models import AuditEvent

_NEW = Inserter(AuditEvent)

# Words that, in a detail field's name, suggest a secret is being written (``pin``, ``new_pin``,
# ``sms_code``, ``api_token``...): refusing them keeps PINs, codes and keys out of the log.
_SECRET_WORDS = {"pin", "pins", "code", "codes", "otp", "password", "passwd", "secret", "token", "body"}


def _named_like_secret(name: str, value) -> bool:
    # A flag (``temporary_pin=True``) says whether something is the case; it cannot carry one.
    if isinstance(value, bool) or value is None:
        return False
    return _secret_name(name)


@functools.lru_cache(maxsize=512)  # the names are the code's own keyword arguments: a few dozen
def _secret_name(name: str) -> bool:
    words = set(re.split(r"[^a-z0-9]+|(?<=[a-z])(?=[0-9])", re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()))
    return bool(words & _SECRET_WORDS)


def _client_ip(ip) -> str | None:
    """The address in a form the column takes, or None (a malformed one must not break a request)."""
    if not ip:
        return None
    try:
        return str(ipaddress.ip_address(str(ip).strip()))
    except ValueError:
        return None


def record(
    event: str,
    *,
    outcome: str = "",
    citizen=None,
    channel: str = "",
    ip: str | None = None,
    **detail,
) -> AuditEvent:
    """Append one event. ``detail`` must be safe to show an auditor: never a PIN, code or key.

    Raises ``ValueError`` when a detail field that is not a flag is named like a secret (``pin``,
    ``new_pin``, ``code``, ``token``...). A client IP that is not an IP address is recorded as
    unknown. The event is written in the caller's transaction: if that rolls back, so does the event
    (and its place in the chain).
    """
    bad = sorted(k for k, v in detail.items() if _named_like_secret(k, v))
    if bad:
        raise ValueError(f"audit detail may not carry secrets: {bad}")
    fields = dict(at=clock.now(), event=event, outcome=outcome, channel=channel or "", ip=_client_ip(ip),
                  detail={k: v for k, v in detail.items() if v is not None})
    citizen_id = citizen.pk if citizen is not None else None
    # In the caller's transaction or one of its own: the stream stays this transaction's until it
    # ends, so its head cannot move between reading it and appending. No savepoint: a failed
    # append is never caught and retried, it fails the whole transaction.
    with transaction.atomic(savepoint=False):
        connection = transaction.get_connection()
        appended = _appended_here(connection)
        if appended is not None:  # this transaction's own last link: its stream is still claimed
            stream, seq, prev_hash = appended
        else:
            stream = chain.claim_stream()
            seq, prev_hash = chain.head(stream)
        link = dict(stream=stream, seq=seq + 1, prev_hash=prev_hash)
        event = _NEW.create(**fields, **link, citizen=citizen,
                            hash=chain.link_hash(**link, **fields, citizen_id=citizen_id))
        _remember_appended(connection, (stream, event.seq, event.hash))
        return event


# A transaction that appends several events (a login's code check and completion) reads its
# stream's head once: the link it appended last is the head until it ends, since the stream is
# its own (PostgreSQL's transaction lock; SQLite's single writer). What it appended is kept on the
# connection with an on-commit callback, and trusted only while that callback is still pending:
# Django drops it when the transaction, or a savepoint around the append, rolls back.

def _appended_here(connection) -> tuple[int, int, str] | None:
    kept = getattr(connection, "_chave_audit_appended", None)
    if kept is None:
        return None
    forget, link = kept
    return link if any(func is forget for _sids, func, _robust in connection.run_on_commit) else None


def _remember_appended(connection, link: tuple[int, int, str]) -> None:
    def forget():
        if getattr(connection, "_chave_audit_appended", (None,))[0] is forget:
            connection._chave_audit_appended = None

    connection._chave_audit_appended = (forget, link)
    connection.on_commit(forget)


def history(citizen, limit: int = 100):
    """The citizen's most recent events, newest first."""
    return AuditEvent.objects.filter(citizen=citizen)[:limit]
