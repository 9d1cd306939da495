"""The personal area's operations: what a signed-in citizen may do with their key.

Views call these with the key of the session's :class:`~chave.login.services.SignedIn`; every
write goes through the owning app's services (identity for PINs, contacts and the lifecycle,
codes for one-time codes, oidc for consents, tokens and single sign-on sessions, delivery for
notices), and each action is audited. Errors a citizen can act on are ``ValidationError`` (from
identity) or a result value carrying a ``reason``; nothing here returns, logs or audits a PIN, a
code or a session key.

Contracts in short:

- :func:`start_pin_change` checks the current PIN (it counts like a login's: wrong PINs lock the
  key) and sends a code to the key's best channel, bound to a fresh transaction;
  :func:`confirm_pin_change` checks that code, then sets the new PIN through
  :func:`chave.identity.services.change_pin` (which tells the citizen).
- :func:`start_contact_change` / :func:`confirm_contact_change` send a code to the new mobile
  number or e-mail address and, once it is typed back, replace the old contact (told by
  :mod:`chave.identity.contacts`); every contact of the key is then told.
- :func:`cancel_key` cancels through the lifecycle (contacts released, ``key_cancelled`` sent
  for signing), ends every session of the key and tells the citizen.
- :func:`report_not_me` blocks the key at once, records the report, ends every session and
  tells the citizen.
- :func:`revoke_portal` forgets a portal's consent and revokes its tokens.
- :func:`export` is everything held about the citizen, without a hash or secret.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from importlib import import_module

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from chave import clock, policy
from chave.audit import services as audit
from chave.audit.models import AuditEvent
from chave.codes import services as codes
from chave.codes.models import OneTimeCode, Purpose
from chave.compiled import Compiled, Inserter
from chave.delivery import services as delivery
from chave.delivery.models import OutboundMessage
from chave.federation import services as federation
from chave.federation.models import SsoSession
from chave.identity import contacts
from chave.identity import services as identity
from chave.identity.models import ContactKind, Key, KeyStatus
from chave.login import services as login
from chave.oidc import services as oidc
from chave.oidc.logout import end_sso_session

from .models import KeySession, NotMeReport

_NEW_SESSION = Inserter(KeySession)
_OPEN_SESSIONS = Compiled(lambda key: KeySession.objects.filter(key_id=key, ended_at__isnull=True)
                          .values_list("pk", "session_key"), int, values=True)

# The code confirming a PIN change is a fresh proof of the key's second factor, so it is a login
# code (its lifetime and message), bound to a transaction of the personal area's own.
PIN_CODE_PURPOSE = Purpose.LOGIN
PIN_TRANSACTION_PREFIX = "area-pin-"
AREA_CONTACT_KINDS = (ContactKind.MOBILE, ContactKind.EMAIL, ContactKind.X)


def area_contact_kinds() -> tuple[str, ...]:
    """The contacts a citizen may set in the personal area now: an X account only while the X
    channel is configured (its code goes by direct message)."""
    from chave.delivery.providers import enabled_channels

    return tuple(k for k in AREA_CONTACT_KINDS if k != ContactKind.X or "x" in enabled_channels())
# Events of the history that only repeat what a shown event says (a login is a PIN, a code and a
# sign-in) or that are the service's own bookkeeping.
HIDDEN_EVENTS = {"code.send", "message.delivery", "oidc.backchannel"}
HIDDEN_WHEN_OK = {"pin.attempt", "code.verify", "app.pairing", "app.approval", "app.qr", "app.settings"}


# --- Who is in the area -------------------------------------------------------------------------


def key_of(who: login.SignedIn | None) -> Key | None:
    """The key the session signed in with (None when signed out or the key is gone)."""
    if who is None:
        return None
    return Key.objects.select_related("citizen").filter(pk=who.key_id, citizen_id=who.citizen_id).first()


def is_recent(who: login.SignedIn) -> bool:
    """Whether the sign-in is recent enough for sensitive actions (``area_reauth_seconds``)."""
    signed_at = dt.datetime.fromisoformat(who.auth_time)
    return clock.now() - signed_at <= dt.timedelta(seconds=policy.get("area_reauth_seconds"))


# --- The sessions of a key ----------------------------------------------------------------------


def _session_store():
    return import_module(settings.SESSION_ENGINE).SessionStore


def _existing_sessions(session_keys) -> set[str]:
    """Which of ``session_keys`` the session store still holds (one query with a database store)."""
    store = _session_store()
    if hasattr(store, "get_model_class"):
        return set(store.get_model_class().objects.filter(session_key__in=list(session_keys))
                   .values_list("session_key", flat=True))
    return {session_key for session_key in session_keys if store().exists(session_key)}


def record_session(sender, request, who, **kwargs) -> None:
    """Receiver of :data:`chave.login.signals.signed_in`: remember this session for its key.

    Rows of the key's sessions that have lapsed meanwhile are marked ended, so the table holds
    about as many open rows per key as the key has browsers.
    """
    now = clock.now()
    open_rows = dict(_OPEN_SESSIONS.all(who.key_id))
    if open_rows:
        live = _existing_sessions(open_rows.values())
        lapsed = [pk for pk, session_key in open_rows.items() if session_key not in live]
        if lapsed:
            KeySession.objects.filter(pk__in=lapsed).update(ended_at=now)
    if request.session.session_key is None:  # a session never stored before this sign-in: store it now
        request.session.save()
    _NEW_SESSION.create(key_id=who.key_id, session_key=request.session.session_key, method=who.method,
                        assurance_level=who.assurance_level, signed_in_at=now)


def forget_session(sender, request, who=None, **kwargs) -> None:
    """Receiver of :data:`chave.login.signals.signed_out`: the session is ending."""
    if request.session.session_key:
        KeySession.objects.filter(session_key=request.session.session_key, ended_at__isnull=True).update(
            ended_at=clock.now())


@dataclass(frozen=True)
class EndedSessions:
    browser_sessions: int
    sso_sessions: int
    tokens: int


def end_key_sessions(key: Key, *, ip: str | None = None, by: str) -> EndedSessions:
    """End every session of ``key``: its browser sessions (Chave's), its single sign-on sessions
    (their portals told by back-channel logout) and every access and refresh token issued for
    the citizen. Audited as ``area.sessions_ended``. The caller flushes its own request's session
    (deleting it here would make the session middleware fail to save it)."""
    store = _session_store()
    now = clock.now()
    with transaction.atomic():
        rows = list(KeySession.objects.filter(key=key, ended_at__isnull=True))
        for row in rows:
            store(session_key=row.session_key).delete()
        KeySession.objects.filter(pk__in=[r.pk for r in rows]).update(ended_at=now)
        sso = [end_sso_session(s, ip=ip, by=by) for s in SsoSession.objects.filter(key=key, ended_at__isnull=True)]
        tokens = oidc.revoke_tokens(key.citizen)
        ended = EndedSessions(len(rows), sum(1 for s in sso if s is not None), tokens)
        audit.record("area.sessions_ended", outcome="ok", citizen=key.citizen, ip=ip, by=by,
                     browser_sessions=ended.browser_sessions, sso_sessions=ended.sso_sessions, revoked=tokens)
    return ended


# --- Changing the PIN ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CodeSent:
    """A code was (or was not) sent for an action; ``transaction`` confirms it later."""

    ok: bool
    reason: str  # sent | the PIN decision's reason | no_channel | the code issue's refusal
    transaction: str = ""
    channel: str = ""
    masked: str = ""
    issue: codes.IssueResult | None = None
    until: dt.datetime | None = None


def _best_channel(key: Key) -> tuple[str, str, str] | None:
    """(channel, destination, masked) of the key's best verified contact an enabled channel reaches."""
    options = login.channel_options(key)
    if not options:
        return None
    best = options[0]
    contact = key.contacts.get(kind=login.KIND_OF_CHANNEL[best.channel], verified_at__isnull=False, live=True)
    return best.channel, contact.value, best.masked


def send_pin_code(key: Key, *, ip: str | None, language: str, transaction_id: str = "",
                  task: str = "pin_change") -> CodeSent:
    """Send the code of a PIN change (a new transaction, or again for ``transaction_id``); its
    message names the ``task``: a PIN change, or ``recover`` (a new PIN with the Citizen Card)."""
    target = _best_channel(key)
    if target is None:
        return CodeSent(False, "no_channel")
    channel, destination, masked = target
    tx = transaction_id if transaction_id.startswith(PIN_TRANSACTION_PREFIX) else (
        PIN_TRANSACTION_PREFIX + secrets.token_hex(12))
    result = codes.issue_code(key, purpose=PIN_CODE_PURPOSE, transaction=tx, channel=channel,
                              destination=destination, ip=ip, portal=str(_("the Chave personal area")),
                              language=language, task=task)
    return CodeSent(result.sent, result.reason, tx, channel, masked, result)


def start_pin_change(key: Key, current_pin: str, *, ip: str | None, language: str) -> CodeSent:
    """Check the current PIN, then send a code. A wrong PIN counts towards the key's locks."""
    decision = identity.check_login_pin(key, current_pin, ip=ip, channel="web")
    if not decision.ok:
        return CodeSent(False, decision.reason, until=decision.until)
    return send_pin_code(key, ip=ip, language=language)


def check_pin_code(transaction_id: str, code: str, *, ip: str | None) -> codes.VerifyResult:
    if not transaction_id.startswith(PIN_TRANSACTION_PREFIX):
        return codes.VerifyResult(False, "no_code")
    return codes.verify_code(purpose=PIN_CODE_PURPOSE, transaction=transaction_id, submitted=code, ip=ip)


def set_pin(key: Key, new_pin: str, *, ip: str | None) -> None:
    """Set the new PIN once the code was right. Raises ``ValidationError`` (rules, same PIN)."""
    identity.change_pin(key, new_pin, ip=ip, reason="personal area", channel="web")


# --- Changing a contact -------------------------------------------------------------------------


# Replacing the mobile number (the factor of level 3) needs a sign-in of level 3 or more: a code
# sent to that number, or the Citizen Card. An e-mail sign-in (level 2) may add a first mobile
# number, or change the e-mail address.
REPLACE_MOBILE_MIN_LEVEL = 3


def may_replace(who: login.SignedIn, kind: str, current) -> bool:
    """Whether this sign-in may change the contact ``kind`` whose verified value is ``current``."""
    return not (kind == ContactKind.MOBILE and current is not None and who.assurance_level < REPLACE_MOBILE_MIN_LEVEL)


def start_contact_change(key: Key, kind: str, value: str, *, ip: str | None, language: str,
                         transaction_id: str = "") -> contacts.VerificationStarted:
    """Send a code to the new contact ``value`` (normalised by the form).

    Raises ``ValidationError`` when it is the key's contact already, when another live key holds
    it (the rule of one mobile number per key says so, in those words), or when the key is not live.
    """
    if kind not in area_contact_kinds():
        raise ValidationError(_("Unknown kind of contact."), code="contact_kind_invalid")
    if key.contacts.filter(kind=kind, value=value, verified_at__isnull=False).exists():
        raise ValidationError(_("This is already the contact of your key."), code="contact_same")
    return contacts.request_verification(key, kind, value, ip=ip, language=language, transaction_id=transaction_id)


def confirm_contact_change(key: Key, kind: str, value: str, *, transaction_id: str, code: str,
                           ip: str | None) -> codes.VerifyResult:
    """Check the code sent to the new contact; when right it replaces the old one (which is told)
    and every contact of the key is told. Raises ``ValidationError`` as
    :func:`chave.identity.contacts.confirm` does."""
    with transaction.atomic():
        result = contacts.confirm(key, kind, value, transaction_id=transaction_id, code=code, ip=ip)
        if result.ok:
            delivery.notify(key.citizen, "contact_changed")
    return result


# --- Cancelling the key ------------------------------------------------------------------------


def check_pin(key: Key, pin: str, *, ip: str | None) -> identity.PinDecision:
    """A PIN typed again to confirm an action; counts like a login's."""
    return identity.check_login_pin(key, pin, ip=ip, channel="web")


def cancel_key(key: Key, *, ip: str | None) -> EndedSessions:
    """Cancel the key for good: through the lifecycle (contacts released, signing told by
    :data:`chave.identity.signals.key_cancelled`), the citizen told on their contacts, every
    session ended. Raises ``IllegalTransition`` when it is cancelled already."""
    with transaction.atomic():
        identity.cancel_key(key, ip=ip, by="citizen", channel="web")
        delivery.notify(key.citizen, "key_cancelled")
        return end_key_sessions(key, ip=ip, by="key_cancelled")


# --- "This wasn't me" ---------------------------------------------------------------------------


def history(citizen):
    """The citizen's security events for the history page, newest first."""
    events = AuditEvent.objects.filter(citizen=citizen).exclude(event__in=HIDDEN_EVENTS)
    return events.exclude(event__in=HIDDEN_WHEN_OK, outcome="ok").select_related("not_me_report")


def report_not_me(key: Key, event: AuditEvent, *, ip: str | None) -> NotMeReport:
    """The citizen says ``event`` was not them: block the key at once (only the Citizen Card or a
    counter unlocks it), record the report, end every session, tell the citizen.

    A second report of the same event returns the first one and changes nothing. ``event`` must
    be one of the key's citizen's (the caller looks it up that way).
    """
    with transaction.atomic():
        existing = NotMeReport.objects.filter(event=event).first()
        if existing is not None:
            return existing
        blocked = False
        if key.status in (KeyStatus.ACTIVE, KeyStatus.LOCKED):
            blocked = identity.block_key(key, ip=ip, by="citizen_report", channel="web",
                                         reported_event_id=event.pk)
        report = NotMeReport.objects.create(citizen=key.citizen, key=key, event=event, reported_at=clock.now(),
                                            ip=ip, blocked_key=blocked)
        audit.record("area.not_me", outcome="ok", citizen=key.citizen, ip=ip, reported_event_id=event.pk,
                     reported_event=event.event, blocked=blocked)
        delivery.notify(key.citizen, "key_reported")
        ended = end_key_sessions(key, ip=ip, by="not_me")
        NotMeReport.objects.filter(pk=report.pk).update(sessions_ended=ended.browser_sessions)
        report.sessions_ended = ended.browser_sessions
    return report


# --- Portals ------------------------------------------------------------------------------------


def consents(citizen):
    return federation.consents_of(citizen)


def revoke_portal(citizen, client_id: str) -> bool:
    """Forget the consent given to the portal and revoke its tokens; False when there is none."""
    row = federation.consents_of(citizen).filter(relying_party__client_id=client_id).first()
    if row is None:
        return False
    federation.revoke_consent(citizen, row.relying_party)
    return True


# --- Export ------------------------------------------------------------------------------------


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def export(citizen, *, ip: str | None = None) -> dict:
    """Everything held about the citizen, as JSON-ready data: identity, keys with their contacts,
    consents, history, reports, sessions, messages and codes sent (their redacted text and
    times). Never a PIN hash, a code or its hash, a token or a session key. Audited."""
    keys = list(citizen.keys.order_by("created_at", "pk"))
    data = {
        "format": "chave-personal-data/1",
        "exported_at": clock.now().isoformat(),
        "citizen": {
            "document_type": citizen.doc_type, "document_country": citizen.doc_country,
            "document_number": citizen.doc_number, "full_name": citizen.full_name,
            "given_name": citizen.given_name, "family_name": citizen.family_name,
            "birth_date": _iso(citizen.birth_date), "nif": citizen.nif or None,
            "document_expiry": _iso(citizen.document_expiry), "language": citizen.language,
            "created_at": _iso(citizen.created_at),
        },
        "keys": [
            {
                "status": k.status, "effective_status": k.effective_status(clock.now()),
                "created_at": _iso(k.created_at), "activated_at": _iso(k.activated_at),
                "valid_until": _iso(k.valid_until), "last_used_at": _iso(k.last_used_at),
                "status_changed_at": _iso(k.status_changed_at), "locked_until": _iso(k.locked_until),
                "pin_is_temporary": k.pin_is_temporary, "wrong_pins_in_a_row": k.pin_failures,
                "contacts": [
                    {"kind": c.kind, "value": c.value, "verified_at": _iso(c.verified_at), "live": c.live,
                     "created_at": _iso(c.created_at)}
                    for c in k.contacts.order_by("kind")
                ],
                "sessions": [
                    {"method": s.method, "assurance_level": s.assurance_level, "signed_in_at": _iso(s.signed_in_at),
                     "ended_at": _iso(s.ended_at)}
                    for s in k.browser_sessions.all()
                ],
                "portal_sessions": [
                    {"method": s.method, "assurance_level": s.assurance_level, "auth_time": _iso(s.auth_time),
                     "ended_at": _iso(s.ended_at),
                     "portals": sorted(s.relying_parties.values_list("name", flat=True))}
                    for s in k.sso_sessions.order_by("created_at", "pk")
                ],
                "codes": [
                    {"purpose": c.purpose, "channel": c.channel, "destination": c.destination,
                     "created_at": _iso(c.created_at), "used_at": _iso(c.used_at)}
                    for c in OneTimeCode.objects.filter(key=k).order_by("created_at", "pk")
                ],
            }
            for k in keys
        ],
        "consents": [
            {"portal": c.relying_party.name, "client_id": c.relying_party.client_id, "shared": list(c.granted),
             "refused": list(c.refused), "updated_at": _iso(c.updated_at)}
            for c in federation.consents_of(citizen)
        ],
        "history": [
            {"at": _iso(e.at), "event": e.event, "outcome": e.outcome, "channel": e.channel or None,
             "ip": e.ip, "detail": e.detail}
            for e in AuditEvent.objects.filter(citizen=citizen).order_by("at", "pk")
        ],
        "reports": [
            {"reported_at": _iso(r.reported_at), "event": r.event.event, "event_at": _iso(r.event.at),
             "ip": r.ip, "blocked_key": r.blocked_key}
            for r in citizen.not_me_reports.select_related("event").order_by("reported_at", "pk")
        ],
        "messages": [
            {"channel": m.channel, "destination": m.destination, "kind": m.kind, "subject": m.subject,
             "text": m.body_redacted, "status": m.status, "created_at": _iso(m.created_at),
             "sent_at": _iso(m.sent_at)}
            for m in OutboundMessage.objects.filter(citizen=citizen).order_by("created_at", "pk")
        ],
    }
    audit.record("area.export", outcome="ok", citizen=citizen, ip=ip)
    return data
