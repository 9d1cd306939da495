"""Citizen Card sign-in: challenges, the agent's answer, and the verified card in the session.

The protocol (``PROTOCOL.md``): :func:`issue_challenge` makes a single-use challenge bound to
this browser session and to the service's origin; the citizen's card agent signs
``protocol.signed_payload(challenge_id, challenge, origin)`` with the card and posts the
certificate and signature to ``/card/return``; :func:`answer` checks them there (no session is
needed: the agent's page posts cross-site) and records the outcome with a one-time finish token
that only the answering browser receives; :func:`finish` then moves the result into the session
that asked for it, once. After that, :func:`verified_card` says who the card proved to be.

Errors are :class:`chave.card.verification.CardRefused` with a reason; :data:`REFUSALS` holds the
words shown for each. Every answer and refusal is audited (never a signature or the challenge).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from dataclasses import asdict, dataclass

from django.conf import settings
from django.db import transaction
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from chave import clock, policy
from chave.audit import services as audit
from chave.identity.models import Citizen, DocType, Key, KeyStatus
from chave.login import services as login
from chave.throttle import services as throttle

from . import protocol, verification
from .models import CardChallenge
from .verification import CardIdentity, CardRefused

SESSION_CHALLENGE = "chave.card.challenge"
SESSION_IDENTITY = "chave.card.identity"
RETURN_PATH = "/card/return"

# What the citizen is told for each refusal: what happened and what to do.
REFUSALS = {
    "no_challenge": _("This Citizen Card sign-in is not known or has expired. Please start again."),
    "expired_challenge": _("The Citizen Card sign-in took too long and has expired. Please start again."),
    "replayed": _("This Citizen Card answer was already used. Please start again."),
    "other_session": _("This Citizen Card sign-in was started in another browser or window. "
                       "Please start again here."),
    "wrong_origin": _("The card agent signed for another website, not this one. Check the agent's settings "
                      "and start again."),
    "malformed": _("The card agent's answer could not be read. Please start again."),
    "bad_signature": _("The card's signature does not match this sign-in. Please start again."),
    "not_yet_valid": _("The certificate of this Citizen Card is not valid yet."),
    "expired": _("The certificate of this Citizen Card has expired. Renew your card at a counter."),
    "untrusted": _("This card was not issued by an authority Chave recognises. Use a Portuguese Citizen Card."),
    "not_configured": _("Citizen Card sign-in is not available on this service. Please contact the help line."),
    "key_usage": _("This card's certificate cannot be used to sign in."),
    "revoked": _("The certificate of this Citizen Card has been revoked. Contact a counter to replace the card."),
    "revocation_unknown": _("We could not check whether this Citizen Card has been revoked. Please try again later."),
    "no_identity": _("This card's certificate does not say whose card it is."),
    "throttled": _("Too many Citizen Card sign-ins from this connection. Wait a few minutes and try again."),
}


def refusal_text(reason: str) -> str:
    return str(REFUSALS.get(reason, REFUSALS["malformed"]))


def service_origin() -> str:
    return protocol.origin_of(settings.CHAVE_PUBLIC_URL)


def agent_url() -> str:
    return f"http://127.0.0.1:{settings.CHAVE_CARD_AGENT_PORT}/sign"


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def safe_next(next_url: str | None) -> str:
    """``next_url`` when it is a path on this service, else ""."""
    next_url = (next_url or "").strip()
    if not next_url.startswith("/") or next_url.startswith("//") or "\\" in next_url or len(next_url) > 500:
        return ""
    return next_url


@dataclass(frozen=True)
class AgentForm:
    """What Chave's card page posts to the agent."""

    action: str
    fields: dict


def issue_challenge(request, *, next_url: str = "", purpose: str = "citizen") -> AgentForm:
    """A new challenge for this browser session (replacing any earlier one of the session);
    returns the form that takes it to the agent. Challenges past retention are deleted.
    ``purpose`` "staff": the card's holder is not signed in as a citizen when it returns (the
    counter's own sign-in, at ``next_url``, decides). Each challenge is a row: an address gets
    ``card_challenge_per_ip`` of them, then :class:`CardRefused` ``throttled``."""
    if not throttle.hit(("card_challenge_per_ip", login.client_ip(request) or "")).allowed:
        audit.record("card.challenge", outcome="throttled", channel="citizen_card", ip=login.client_ip(request))
        raise CardRefused("throttled")
    now = clock.now()
    CardChallenge.objects.filter(
        expires_at__lt=now - dt.timedelta(seconds=policy.get("card_challenge_retention_seconds"))
    ).delete()
    binder = secrets.token_urlsafe(32)
    challenge = CardChallenge.objects.create(
        challenge=secrets.token_urlsafe(32), origin=service_origin(), binder_hash=_hash(binder),
        next_url=safe_next(next_url), purpose=purpose, created_at=now,
        expires_at=now + dt.timedelta(seconds=policy.get("card_challenge_seconds")), ip=login.client_ip(request),
    )
    request.session[SESSION_CHALLENGE] = {"id": str(challenge.pk), "binder": binder}
    return AgentForm(agent_url(), {
        protocol.F_CHALLENGE_ID: str(challenge.pk),
        protocol.F_CHALLENGE: challenge.challenge,
        protocol.F_RETURN_URL: settings.CHAVE_PUBLIC_URL.rstrip("/") + RETURN_PATH,
        protocol.F_LANGUAGE: translation.get_language() or settings.LANGUAGE_CODE,
    })


def _challenge(challenge_id: str) -> CardChallenge | None:
    try:
        return CardChallenge.objects.filter(pk=uuid.UUID(str(challenge_id))).first()
    except (ValueError, TypeError):
        return None


@dataclass(frozen=True)
class Answered:
    challenge_id: str
    finish_token: str  # goes only to the browser that answered, in the redirect to finish
    outcome: str  # verified | refused
    reason: str = ""


def answer(*, challenge_id: str, origin: str, certificate: str, signature: str, chain: list[str] = (),
           ip: str | None = None) -> Answered:
    """Check the agent's answer to a challenge and record the outcome, once.

    Raises :class:`CardRefused` (nothing recorded but the audit event) when the challenge is
    unknown (``no_challenge``), expired (``expired_challenge``) or already answered
    (``replayed``). Otherwise returns :class:`Answered`: ``verified``, or ``refused`` with the
    reason from :mod:`chave.card.verification` (or ``wrong_origin``, ``malformed``); either way the
    finish token lets the answering browser see the outcome in its session.
    """
    now = clock.now()
    row = _challenge(challenge_id)
    refusal = None
    if row is None:
        refusal = "no_challenge"
    elif row.answered_at is not None:
        refusal = "replayed"
    elif row.expires_at <= now:
        refusal = "expired_challenge"
    if refusal:
        audit.record("card.answer", outcome=refusal, channel="citizen_card", ip=ip)
        raise CardRefused(refusal)

    identity: CardIdentity | None = None
    reason = ""
    if not hmac.compare_digest(protocol.origin_of(origin), row.origin):
        reason = "wrong_origin"
    else:
        try:
            certificate_der = protocol.b64decode(certificate)
            signature_bytes = protocol.b64decode(signature)
            chain_der = [protocol.b64decode(c) for c in chain if c][:4]
        except ValueError:
            reason = "malformed"
        else:
            payload = protocol.signed_payload(challenge_id=str(row.pk), challenge=row.challenge, origin=row.origin)
            try:
                identity = verification.verify(certificate_der, signature_bytes, payload, at=now, chain=chain_der)
            except CardRefused as exc:
                reason = exc.reason
    finish_token = secrets.token_urlsafe(32)
    outcome = CardChallenge.Outcome.VERIFIED if identity else CardChallenge.Outcome.REFUSED
    with transaction.atomic():
        won = CardChallenge.objects.filter(pk=row.pk, answered_at__isnull=True).update(
            answered_at=now, outcome=outcome, reason=reason, finish_hash=_hash(finish_token),
            identity=asdict(identity) if identity else {},
        )
        if won != 1:
            audit.record("card.answer", outcome="replayed", channel="citizen_card", ip=ip)
            raise CardRefused("replayed")
        citizen = _citizen_of(identity.nic) if identity else None
        audit.record("card.answer", outcome="ok" if identity else reason, citizen=citizen, channel="citizen_card",
                     ip=ip, certificate_serial=identity.certificate_serial if identity else None)
    return Answered(str(row.pk), finish_token, outcome, reason)


def finish(request, *, challenge_id: str, finish_token: str) -> CardChallenge:
    """Bring the answer's outcome into the session that asked for the challenge, once.

    Returns the challenge (with ``next_url``); a verified card is now in the session
    (:func:`verified_card`). Raises :class:`CardRefused`: ``other_session`` when this session did
    not ask for this challenge or the finish token is not the one given to the answering
    browser, ``replayed`` when it was finished already, ``no_challenge``, or the verification's
    own reason when the card was refused.
    """
    now = clock.now()
    ip = login.client_ip(request)
    held = request.session.get(SESSION_CHALLENGE) or {}
    row = _challenge(challenge_id)
    if row is None or row.answered_at is None:
        reason = "no_challenge"
    elif row.finished_at is not None:
        reason = "replayed"
    elif not (held.get("id") == str(row.pk)
              and hmac.compare_digest(_hash(str(held.get("binder", ""))), row.binder_hash)
              and hmac.compare_digest(_hash(finish_token or ""), row.finish_hash)):
        reason = "other_session"
    else:
        won = CardChallenge.objects.filter(pk=row.pk, finished_at__isnull=True).update(finished_at=now)
        reason = "" if won == 1 else "replayed"
    if reason:
        audit.record("card.finish", outcome=reason, channel="citizen_card", ip=ip)
        raise CardRefused(reason)
    request.session.pop(SESSION_CHALLENGE, None)
    if row.outcome != CardChallenge.Outcome.VERIFIED:
        raise CardRefused(row.reason or "malformed")
    request.session[SESSION_IDENTITY] = row.identity
    return row


def verified_card(request, max_age: int | None = None) -> CardIdentity | None:
    """The card this session proved within ``max_age`` seconds (default ``card_verified_seconds``)."""
    data = request.session.get(SESSION_IDENTITY)
    if not data:
        return None
    try:
        identity = CardIdentity(**data)
        verified_at = dt.datetime.fromisoformat(identity.verified_at)
    except (TypeError, ValueError):
        return None
    seconds = policy.get("card_verified_seconds") if max_age is None else max_age
    if clock.now() - verified_at > dt.timedelta(seconds=seconds):
        return None
    return identity


def forget_card(request) -> None:
    request.session.pop(SESSION_IDENTITY, None)


def _citizen_of(nic: str) -> Citizen | None:
    return Citizen.objects.filter(doc_type=DocType.CITIZEN_CARD, doc_country="PT", doc_number=nic).first()


def citizen_key(identity: CardIdentity) -> Key | None:
    """The card holder's current key: live, or their latest one (None when they never had one)."""
    citizen = _citizen_of(identity.nic)
    return citizen.key if citizen else None


# Keys whose holder the card signs in (the personal area, unlocking); portals need a usable key.
SIGN_IN_STATUSES = {KeyStatus.ACTIVE, KeyStatus.LOCKED, KeyStatus.BLOCKED}
PORTAL_STATUSES = {KeyStatus.ACTIVE, KeyStatus.LOCKED}


@dataclass(frozen=True)
class CardLogin:
    """What a verified card led to: signed in or not, and whether portals may use the session."""

    signed_in: login.SignedIn | None
    key: Key | None
    for_portals: bool


def sign_in_with_card(request, identity: CardIdentity) -> CardLogin:
    """Sign the card holder in (method ``citizen_card``, level 4) when they have a key that is
    active, locked or blocked: the card is independent of the PIN, which is how a blocked key is
    unlocked. Portals accept the session only for an active or locked key."""
    key = citizen_key(identity)
    if key is None:
        return CardLogin(None, None, False)
    status = key.effective_status(clock.now())
    if status not in SIGN_IN_STATUSES:
        return CardLogin(None, key, False)
    who = login.complete_card_login(request, key, certificate_serial=identity.certificate_serial)
    return CardLogin(who, key, status in PORTAL_STATUSES)
