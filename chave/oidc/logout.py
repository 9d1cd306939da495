"""Logout: RP-initiated (OpenID Connect RP-Initiated Logout 1.0) and back-channel (OpenID Connect
Back-Channel Logout 1.0).

Ending a single sign-on session (:func:`end_sso_session`) is one database transaction: the
session is marked ended, the codes it issued stop working, its access and refresh tokens are
revoked, and one :class:`~chave.oidc.models.BackchannelLogout` with its task is written for
every portal of the session that registered a back-channel logout URI. The worker
(:func:`send_backchannel_logout`) makes a logout token for that portal and POSTs it; a portal
unreachable or answering 5xx, 429 or 400 (a portal that has not fetched Chave's new signing key
yet answers 400 to a token it cannot verify) is tried again with backoff
(``oidc_backchannel_backoff_seconds``) for at most ``oidc_backchannel_max_attempts`` attempts; 2xx
is delivered, any other answer a permanent failure. Every attempt is audited; no token ever is;
each portal's page at the counter shows the outcomes (:func:`deliveries_for`). A SAML service
provider with a SOAP logout service is queued and retried the same way; the worker sends it a
signed ``LogoutRequest`` over SOAP instead (:func:`chave.saml.services.soap_logout`), delivered
when it answers ``Success``.

Front-channel logout (OpenID Connect Front-Channel Logout 1.0): a portal that registered a
``frontchannel_logout_uri`` is loaded in an invisible frame of the page the citizen sees once
signed out at Chave (with ``iss`` and ``sid``), so it can clear its own session cookies.

RP-initiated logout without ``id_token_hint``: a ``client_id`` with one of its registered
``post_logout_redirect_uri`` is honoured after the citizen confirms (with ``state``).

The end-session endpoint (``/oidc/logout``) uses Authlib's ``EndSessionEndpoint`` to validate
the request: the ``id_token_hint`` must carry our signature (any published key; an expired hint
is accepted, as the specification asks), its ``aud`` must be the ``client_id`` when both are
sent, and ``post_logout_redirect_uri`` must be one the party registered exactly; only then does
the browser go back to the portal (with ``state``). A valid hint naming this browser's SSO
session signs out at once; anything else (no hint, a hint that does not verify, a hint of
another session) asks the citizen first, on a CSRF-protected page.

Chave's own sign-out (:func:`chave.login.services.sign_out`) sends ``signed_out``; the
receiver :func:`end_browser_sso_session` (connected in :class:`chave.oidc.apps.OidcConfig`)
ends the browser's SSO session the same way.
"""

from __future__ import annotations

import datetime as dt
import http.client
import logging
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlencode

from authlib.oauth2 import OAuth2Error
from authlib.oidc.rpinitiated import EndSessionEndpoint
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import transaction
from django.db.models import Q
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils import translation
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from joserfc import jwt
from joserfc.errors import JoseError

from chave import clock, policy
from chave.audit import services as audit
from chave.federation.attributes import subject
from chave.federation.services import SESSION_SSO
from chave.login import services as login_services

from . import keys
from .models import (
    AuthorizationCode,
    BackchannelLogout,
    RelyingParty,
    SsoSession,
    Token,
)
from .server import issuer, server

log = logging.getLogger(__name__)

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
PENDING_LOGOUT = "chave.oidc.logout"
# Input bounds (formats, not rules): an ID token with claims may be a few kilobytes.
MAX_HINT_LENGTH = 16384
MAX_PARAMETER_LENGTH = 2048
_LANGUAGES = {"pt": "pt-pt", "pt-pt": "pt-pt", "en": "en"}


# --- Ending a single sign-on session ----------------------------------------------------------


@dataclass(frozen=True)
class EndedSession:
    sid: str
    revoked: int  # access/refresh token rows revoked
    notified: list[str]  # client_ids of the portals a logout token is queued for


def end_sso_session(sso_session: SsoSession, *, initiator: RelyingParty | None = None, ip: str | None = None,
                    by: str = "citizen") -> EndedSession | None:
    """End a single sign-on session, once; returns what was done, or None when it had already ended.

    In one transaction: ``ended_at`` is set (a conditional update: of two concurrent callers one
    ends it), the session's unused codes expire, its tokens (access and refresh) are revoked,
    and a back-channel logout is queued (row and task) for every portal of the session with a
    ``backchannel_logout_uri`` and every SAML SP with a SOAP logout service, except ``initiator``
    (the portal that asked for the logout and knows already). Audited as ``oidc.logout``. Never
    raises for a portal's problem: sending is the worker's job.
    """
    from chave.saml.services import soap_logout_parties

    from .tasks import send_logout_token

    now = clock.now()
    with transaction.atomic():
        if SsoSession.objects.filter(pk=sso_session.pk, ended_at__isnull=True).update(ended_at=now) != 1:
            return None
        AuthorizationCode.objects.filter(sso_session=sso_session, used_at__isnull=True,
                                         expires_at__gt=now).update(expires_at=now)
        revoked = Token.objects.filter(sso_session=sso_session, revoked_at__isnull=True).update(revoked_at=now)
        parties = list(sso_session.relying_parties.exclude(backchannel_logout_uri="").order_by("pk"))
        parties += [p for p in soap_logout_parties(sso_session) if p not in parties]
        if initiator is not None:
            parties = [p for p in parties if p.pk != initiator.pk]
        notified = []
        for relying_party in parties:
            row = BackchannelLogout.objects.create(sso_session=sso_session, relying_party=relying_party,
                                                   created_at=now)
            send_logout_token.enqueue(str(row.pk))
            notified.append(relying_party.client_id)
        citizen = sso_session.key.citizen
        audit.record("oidc.logout", outcome="ok", citizen=citizen, ip=ip, by=by, session=sso_session.pk,
                     initiator=initiator.client_id if initiator else None, revoked=revoked, notified=notified)
    return EndedSession(sso_session.sid, revoked, notified)


def end_lapsed_sso_sessions(*, limit: int = 500) -> int:
    """End the SSO sessions whose browser session has lapsed, so their portals are told.

    A browser's Chave session lives ``SESSION_COOKIE_AGE`` seconds after it was last written, and
    serving a portal writes it; so an SSO session unused for longer than that has no browser left
    (at worst the browser signed in again since, and a new SSO session serves it). Each is ended as
    by a logout (:func:`end_sso_session`: tokens revoked, back-channel logout tokens queued),
    audited with ``by="timeout"``. Idempotent and safe on several instances at once (each session
    ends once); at most ``limit`` per call. Returns how many this call ended.
    """
    cutoff = clock.now() - dt.timedelta(seconds=settings.SESSION_COOKIE_AGE)
    lapsed = (SsoSession.objects.filter(ended_at__isnull=True)
              .filter(Q(last_used_at__lt=cutoff) | Q(last_used_at__isnull=True, created_at__lt=cutoff))
              .select_related("key__citizen").order_by("pk")[:limit])
    return sum(1 for row in lapsed if end_sso_session(row, by="timeout") is not None)


def browser_sso_session(request, who=None) -> SsoSession | None:
    """The live SSO session this browser's Chave session holds (of ``who``'s key, when given)."""
    sid = (request.session.get(SESSION_SSO) or {}).get("sid")
    if not sid:
        return None
    rows = SsoSession.objects.select_related("key__citizen").filter(sid=sid, ended_at__isnull=True)
    if who is not None:
        rows = rows.filter(key_id=who.key_id)
    return rows.first()


def end_browser_sso_session(sender, request, who=None, **kwargs) -> list[str]:
    """Receiver of :data:`chave.login.signals.signed_out`: the Chave session is ending, so its
    SSO session ends too (tokens revoked, every portal told by back-channel logout). Returns the
    front-channel logout URLs of its portals, for the signed-out page to load in frames (Chave's
    own sign-out reaches the portals as an RP-initiated logout does). Nothing to do when it holds
    none or it has ended already (an RP-initiated logout ends it before signing out)."""
    sso_session = browser_sso_session(request, who)
    if sso_session is None:
        return []
    frames = frontchannel_logout_urls(sso_session)
    end_sso_session(sso_session, ip=login_services.client_ip(request))
    return frames


def sign_out_of_portals(request, *, initiator: RelyingParty | None = None) -> list[str]:
    """Sign this browser out of Chave and of the portals: end its SSO session (see
    :func:`end_sso_session`; ``initiator`` is not sent a logout token) and flush the session
    (:func:`chave.login.services.sign_out`, audited as ``logout``). Returns the front-channel
    logout URLs the page the citizen sees next must load."""
    sso_session = browser_sso_session(request, login_services.signed_in(request))
    frames = []
    if sso_session is not None:
        frames = frontchannel_logout_urls(sso_session, initiator=initiator)
        end_sso_session(sso_session, initiator=initiator, ip=login_services.client_ip(request))
    login_services.sign_out(request)
    return frames


# --- Back-channel logout (the worker's side) ---------------------------------------------------


def _logout_token(row: BackchannelLogout) -> str:
    """A logout token for the row's portal (Back-Channel Logout §2.4), signed with the provider's
    active key for the portal's ID token algorithm; ``typ`` is ``logout+jwt`` and there is no
    ``nonce``. Made anew at each attempt (its own ``jti``, ``iat`` and ``exp``)."""
    relying_party, sso_session = row.relying_party, row.sso_session
    alg = relying_party.id_token_alg
    key_row = keys.active_key(alg)
    now = int(clock.now().timestamp())
    claims = {
        "iss": issuer(),
        "aud": relying_party.client_id,
        "iat": now,
        "exp": now + policy.get("oidc_logout_token_seconds"),
        "jti": secrets.token_urlsafe(24),
        "sub": subject(relying_party, sso_session.key.citizen),
        "sid": sso_session.sid,
        "events": {BACKCHANNEL_EVENT: {}},
    }
    header = {"alg": alg, "kid": key_row.kid, "typ": "logout+jwt"}
    return jwt.encode(header, claims, keys.private_key(key_row), algorithms=[alg])


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A back-channel endpoint answers itself: a redirect is an answer (a failure), not followed."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def _post(uri: str, data: bytes, headers: dict[str, str], *, keep: int = 0) -> tuple[str, int | None, str, bytes]:
    """POST ``data``; returns (``delivered`` | ``retry`` | ``failed``, HTTP status, error, the first
    ``keep`` bytes of a 2xx answer)."""
    request = urllib.request.Request(uri, data=data, method="POST", headers=headers)
    try:
        with _opener.open(request, timeout=settings.CHAVE_HTTP_TIMEOUT) as response:
            body = response.read(max(keep, 4096))[:keep]
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
        exc.close()
        if status in (400, 429) or status >= 500:
            return "retry", status, f"the portal answered {status}", b""
        return "failed", status, f"the portal refused with {status}", b""
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        return "retry", None, f"the portal is unreachable: {getattr(exc, 'reason', exc)}"[:300], b""
    except http.client.HTTPException as exc:
        return "retry", None, f"the portal answered badly: {exc.__class__.__name__}", b""
    if 200 <= status < 300:
        return "delivered", status, "", body
    return "failed", status, f"the portal answered {status}", b""


def _service_provider(relying_party: RelyingParty):
    """The party's SAML registration, or None for an OpenID Connect portal."""
    from chave.saml.models import ServiceProvider

    return ServiceProvider.objects.filter(relying_party=relying_party).first()


def _logout_uri(row: BackchannelLogout) -> str:
    """Where the row's party is told: its ``backchannel_logout_uri`` (OpenID Connect), or its SOAP
    logout service (SAML); empty when it has none any more."""
    from chave.saml.services import soap_logout_url

    sp = _service_provider(row.relying_party)
    return (soap_logout_url(sp) or "") if sp is not None else row.relying_party.backchannel_logout_uri


def _send(row: BackchannelLogout, uri: str) -> tuple[str, int | None, str]:
    """One attempt: a logout token POSTed to an OpenID Connect portal, or a signed SAML
    LogoutRequest over SOAP to a service provider (delivered only when it answers ``Success``)."""
    from chave.saml import services as saml

    sp = _service_provider(row.relying_party)
    if sp is None:
        outcome, status, error, _body = _post(uri, urlencode({"logout_token": _logout_token(row)}).encode(), {
            "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"})
        return outcome, status, error
    sent = saml.soap_logout(row.sso_session, sp)
    outcome, status, error, body = _post(uri, sent.envelope, saml.SOAP_HEADERS,
                                         keep=policy.get("saml_request_max_bytes"))
    if outcome == "delivered":
        error = saml.read_soap_logout_answer(sp, sent, body)
        outcome = "failed" if error else outcome
    return outcome, status, error


def _backoff(attempts: int) -> dt.timedelta:
    steps = policy.get("oidc_backchannel_backoff_seconds")
    return dt.timedelta(seconds=steps[min(attempts, len(steps)) - 1])


def _audit_attempt(row: BackchannelLogout, outcome: str) -> None:
    saml = _service_provider(row.relying_party) is not None
    audit.record("saml.backchannel_logout" if saml else "oidc.backchannel_logout", outcome=outcome,
                 citizen=row.sso_session.key.citizen, client_id=row.relying_party.client_id,
                 session=row.sso_session_id, attempt=row.attempts, http_status=row.last_status,
                 error=row.last_error or None)


def send_backchannel_logout(delivery_id: str) -> str:
    """Send one queued back-channel logout; returns the row's resulting status.

    Contract: the row is claimed (``queued → sending``) in a transaction before the POST, so
    two workers, or a task run twice, send it once. Outcomes: ``delivered`` (2xx); ``queued``
    again with a task deferred by the backoff (unreachable, 429 or 5xx, while attempts remain);
    ``failed`` (400 or another refusal, a redirect, attempts spent, no URI any more, or a token
    that could not be made). Each attempt is audited as ``oidc.backchannel_logout`` (status
    and error, never the token). It never raises for a portal's problem; an unknown id returns
    ``"missing"``.
    """
    from .tasks import send_logout_token

    with transaction.atomic():
        row = (BackchannelLogout.objects.select_for_update(of=("self",))
               .select_related("relying_party", "sso_session__key__citizen").filter(pk=delivery_id).first())
        if row is None or row.status != BackchannelLogout.Status.QUEUED:
            return row.status if row else "missing"
        uri = _logout_uri(row)
        if not uri:
            row.status, row.finished_at, row.last_error = (BackchannelLogout.Status.FAILED, clock.now(),
                                                           "the portal has no back-channel logout URI any more")
            row.save(update_fields=["status", "finished_at", "last_error"])
            _audit_attempt(row, "failed")
            return row.status
        row.status, row.attempts, row.sending_since = BackchannelLogout.Status.SENDING, row.attempts + 1, clock.now()
        row.save(update_fields=["status", "attempts", "sending_since"])

    # Outside any transaction: a slow portal must not hold database locks.
    try:
        outcome, status, error = _send(row, uri)
    except Exception as exc:  # noqa: BLE001 - a key that cannot be read, say: close the row, keep the worker going
        outcome, status, error = "failed", None, f"unexpected {exc.__class__.__name__}"

    finished = clock.now()
    with transaction.atomic():
        row.last_status, row.last_error = status, error[:300]
        if outcome == "delivered":
            row.status, row.finished_at = BackchannelLogout.Status.DELIVERED, finished
        elif outcome == "retry" and row.attempts < policy.get("oidc_backchannel_max_attempts"):
            row.status, row.next_attempt_at = BackchannelLogout.Status.QUEUED, finished + _backoff(row.attempts)
            send_logout_token.using(run_after=row.next_attempt_at).enqueue(str(row.pk))
        else:
            row.status, row.finished_at = BackchannelLogout.Status.FAILED, finished
        updated = BackchannelLogout.objects.filter(pk=row.pk, status=BackchannelLogout.Status.SENDING).update(
            status=row.status, last_status=row.last_status, last_error=row.last_error,
            next_attempt_at=row.next_attempt_at, finished_at=row.finished_at,
        )
        if not updated:
            transaction.set_rollback(True)  # someone else closed it meanwhile: their word stands
            return BackchannelLogout.objects.filter(pk=row.pk).values_list("status", flat=True).first() or "missing"
        _audit_attempt(row, "retry" if row.status == BackchannelLogout.Status.QUEUED else str(row.status))
    if outcome != "delivered":
        log.warning("back-channel logout %s to %s: %s (%s)", row.pk, row.relying_party.client_id, row.status, error)
    return str(row.status)


STALLED_ERROR = "the worker stopped while sending it: sent again"


def recover_stalled_logouts() -> dict[str, int]:
    """Finish what dead workers left of back-channel logouts; returns how many it ``resent`` and ``failed``.

    - A logout ``sending`` for longer than ``delivery_sending_timeout_seconds`` (far longer than a
      POST may take: ``_post`` has its own timeout) was being posted when its worker died. Unlike a
      code, a logout token may safely arrive twice (the session it names ends once; the new one has
      its own ``jti``), so it is queued again with a new task, or ``failed`` if that was its last
      allowed attempt.
    - A logout ``queued`` and due for that long with no task waiting to send it lost its task: it
      gets a new one (sending claims only from ``queued``, so a task too many costs nothing).

    Safe to run anywhere, any number of times, on several instances at once.
    """
    from django_tasks.base import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    from .tasks import send_logout_token

    now = clock.now()
    stale = now - dt.timedelta(seconds=policy.get("delivery_sending_timeout_seconds"))
    resent = failed = 0
    stalled = BackchannelLogout.objects.select_related("relying_party", "sso_session__key__citizen").filter(
        status=BackchannelLogout.Status.SENDING, sending_since__lte=stale)
    for row in stalled:
        last = row.attempts >= policy.get("oidc_backchannel_max_attempts")
        status = BackchannelLogout.Status.FAILED if last else BackchannelLogout.Status.QUEUED
        with transaction.atomic():
            won = BackchannelLogout.objects.filter(pk=row.pk, status=BackchannelLogout.Status.SENDING,
                                                   sending_since__lte=stale).update(
                status=status, last_error=STALLED_ERROR, next_attempt_at=None if last else now,
                finished_at=now if last else None)
            if not won:
                continue
            row.status, row.last_error = status, STALLED_ERROR
            if last:
                failed += 1
            else:
                send_logout_token.enqueue(str(row.pk))
                resent += 1
            _audit_attempt(row, "failed" if last else "retry")
        log.warning("back-channel logout %s to %s: interrupted, %s", row.pk, row.relying_party.client_id, row.status)
    overdue = BackchannelLogout.objects.filter(status=BackchannelLogout.Status.QUEUED).filter(
        Q(next_attempt_at__lte=stale) | Q(next_attempt_at__isnull=True, created_at__lte=stale))
    waiting = DBTaskResult.objects.filter(status=TaskResultStatus.READY, task_path=send_logout_token.module_path)
    for row_id in overdue.values_list("pk", flat=True):
        if not waiting.filter(args_kwargs__args__0=str(row_id)).exists():
            send_logout_token.enqueue(str(row_id))
            resent += 1
    return {"resent": resent, "failed": failed}


def deliveries_for(relying_party: RelyingParty, *, limit: int = 20) -> list[BackchannelLogout]:
    """The portal's latest back-channel logouts, newest first (for its page at the counter)."""
    return list(BackchannelLogout.objects.filter(relying_party=relying_party).order_by("-created_at")[:limit])


# --- Front-channel logout ------------------------------------------------------------------------


def frontchannel_logout_urls(sso_session: SsoSession, initiator: RelyingParty | None = None) -> list[str]:
    """The front-channel logout URIs of the session's portals, each with ``iss`` and ``sid``
    (Front-Channel Logout §2, §3), to load in frames once the session has ended; and a signed
    SAML LogoutRequest for each SAML service provider it served but ``initiator``
    (:func:`chave.saml.services.logout_request_urls`)."""
    from chave.saml.services import logout_request_urls

    from urllib.parse import urlencode as _urlencode

    from .models import ClientSettings

    rows = ClientSettings.objects.filter(relying_party__in=sso_session.relying_parties.all()).exclude(
        frontchannel_logout_uri="").order_by("relying_party__name")
    urls = []
    for row in rows:
        separator = "&" if "?" in row.frontchannel_logout_uri else "?"
        urls.append(row.frontchannel_logout_uri + separator + _urlencode({"iss": issuer(), "sid": sso_session.sid}))
    return urls + logout_request_urls(sso_session, exclude=initiator)


def _with_frames(response, urls: list[str]):
    """Chave's policy admits no frame: these, and only these, may load."""
    from chave.security import allow_frames

    return allow_frames(response, urls)


# --- RP-initiated logout: reading the request ---------------------------------------------------


class _EndSession(EndSessionEndpoint):
    """Authlib's validation of an end-session request, against our keys and our registry."""

    def get_server_jwks(self):
        return keys.jwks()

    def get_algorithms(self):
        return list(keys.ALGORITHMS)

    def end_session(self, end_session_request):  # pragma: no cover - the views end the session themselves
        raise NotImplementedError


@dataclass(frozen=True)
class LogoutRequest:
    """What an end-session request asks, once validated.

    ``trusted``: it carries a valid ``id_token_hint`` of ours (then ``sid`` is the session it
    names). ``redirect_to``: the registered ``post_logout_redirect_uri`` with ``state``, for a
    trusted request, or for one naming its ``client_id`` (then only after the citizen confirms);
    None otherwise. ``client``: the approved party the hint was issued to, or the ``client_id``
    named.
    """

    trusted: bool = False
    sid: str | None = None
    client: RelyingParty | None = None
    redirect_to: str | None = None
    asked_redirect: bool = False
    language: str | None = None


def ui_language(ui_locales) -> str | None:
    """The first of ``ui_locales`` we speak (``pt-PT``, ``pt``, ``en``...), or None."""
    for tag in str(ui_locales or "").split()[:10]:
        tag = tag.lower()
        found = _LANGUAGES.get(tag) or _LANGUAGES.get(tag.split("-")[0])
        if found:
            return found
    return None


def _well_formed(parameters) -> bool:
    """Each parameter once, none longer than its bound."""
    for name in parameters:
        values = parameters.getlist(name)
        bound = MAX_HINT_LENGTH if name == "id_token_hint" else MAX_PARAMETER_LENGTH
        if len(values) > 1 or len(name) > MAX_PARAMETER_LENGTH or any(len(v) > bound for v in values):
            return False
    return True


def read_logout_request(request) -> LogoutRequest:
    """Validate the end-session request in ``request.GET`` (RP-Initiated Logout §2–§4).

    Trusted only when ``id_token_hint`` verifies against our published keys (expiry ignored),
    was issued by us (``iss``) and, when ``client_id`` is sent too, to that client. The redirect
    back is honoured only then, and only to a ``post_logout_redirect_uri`` the party registered
    exactly, with ``state`` added. A malformed request (a repeated or over-long parameter), a
    hint that does not verify, or a ``client_id`` that does not match it, is read as untrusted
    (the citizen is asked, and not sent back). Never raises for bad input.
    """
    parameters = request.GET
    well_formed = _well_formed(parameters)
    asked_redirect = bool(parameters.get("post_logout_redirect_uri"))
    # The language is honoured whenever ui_locales itself is sound, so that the citizen can read
    # the question even when another parameter made the request untrusted.
    locales = parameters.getlist("ui_locales")
    language = ui_language(locales[0]) if len(locales) == 1 and len(locales[0]) <= MAX_PARAMETER_LENGTH else None
    untrusted = LogoutRequest(asked_redirect=asked_redirect, language=language)
    if not well_formed:
        return untrusted
    if not parameters.get("id_token_hint"):
        return _without_hint(parameters, untrusted)
    try:
        validated = _EndSession(server()).validate_request(server().create_oauth2_request(request))
    except (OAuth2Error, JoseError, ValueError, TypeError, KeyError):
        return untrusted
    claims = validated.id_token_claims
    if not isinstance(claims, dict) or claims.get("iss") != issuer():
        return untrusted
    sid = claims.get("sid")
    return LogoutRequest(trusted=True, sid=sid if isinstance(sid, str) else None, client=validated.client,
                         redirect_to=validated.redirect_uri, asked_redirect=asked_redirect, language=language)


def _without_hint(parameters, untrusted: LogoutRequest) -> LogoutRequest:
    """RP-Initiated Logout §2 without ``id_token_hint``: a ``client_id`` of an approved portal and
    one of its registered ``post_logout_redirect_uri`` (exactly) earn the way back, with ``state``,
    once the citizen confirms (nothing proves the request came from that portal, so it never signs
    out at once)."""
    from authlib.common.urls import add_params_to_uri

    client = server().query_client(parameters.get("client_id"))
    uri = parameters.get("post_logout_redirect_uri")
    if client is None or not uri or uri not in (client.post_logout_redirect_uris or []):
        return untrusted
    state = parameters.get("state")
    return LogoutRequest(trusted=False, client=client, asked_redirect=True, language=untrusted.language,
                         redirect_to=add_params_to_uri(uri, {"state": state}) if state else uri)


# --- RP-initiated logout: the pages -------------------------------------------------------------


def _signed_out_page(request, *, was_signed_in: bool, not_returned: bool, status: int = 200,
                     frames: list[str] = (), continue_to: str | None = None, portal: str | None = None,
                     continue_form: dict | None = None):
    """The signed-out page: its front-channel frames, and the way back to the portal, a link
    (``continue_to``) or a button posting ``continue_form`` (``action``, ``fields``: a SAML
    LogoutResponse by HTTP-POST; then the page may post only there)."""
    page = _with_frames(render(request, "oidc/logout_done.html", {
        "was_signed_in": was_signed_in, "not_returned": not_returned, "frames": frames,
        "continue_to": continue_to, "portal": portal, "continue_form": continue_form}, status=status), list(frames))
    if continue_form and settings.CHAVE_CONTENT_SECURITY_POLICY:
        policy_ = page.get("Content-Security-Policy") or settings.CHAVE_CONTENT_SECURITY_POLICY
        page["Content-Security-Policy"] = f"{policy_}; form-action {continue_form['action']}"
    return page


def _finish(request, *, redirect_to: str | None, was_signed_in: bool, asked_redirect: bool, frames: list[str] = (),
            portal: str | None = None):
    """Back to the portal, or the signed-out page. With front-channel logouts to load, the page
    comes first (its frames load them) and offers the way back to the portal (``portal`` names it)."""
    if redirect_to and not frames:
        return HttpResponseRedirect(redirect_to)
    return _signed_out_page(request, was_signed_in=was_signed_in, not_returned=asked_redirect and not redirect_to,
                            frames=frames, continue_to=redirect_to, portal=portal)


def _portal_names(request, who) -> list[str]:
    sso_session = browser_sso_session(request, who)
    if sso_session is None:
        return []
    return list(sso_session.relying_parties.order_by("name").values_list("name", flat=True))


@csrf_exempt  # a portal may send the request by POST; nothing is done without a trusted hint or a confirmation
@never_cache
def end_session(request):
    """The end-session endpoint (``/oidc/logout``; RP-Initiated Logout 1.0), GET or POST.

    A POST is answered with a 303 to the same request as a GET: the session cookie
    (``SameSite=Lax``) travels with a top-level GET, not with a cross-site POST. Then:

    - nobody signed in in this browser: nothing to end; back to a validated
      ``post_logout_redirect_uri`` (with ``state``), else a "you are signed out" page;
    - a valid ``id_token_hint`` of this browser's SSO session: signed out at once (SSO session
      ended, tokens revoked, the other portals told by back-channel logout), then back to the
      portal or the page;
    - anything else: the confirmation page ("Sign out of Chave and all portals?"), which posts
      to :func:`confirm_end_session`.

    ``ui_locales`` chooses the language of the pages. Never a 500 for bad input.
    """
    if request.method == "POST":
        try:
            query = request.POST.urlencode()
        except (RequestDataTooBig, SuspiciousOperation):
            query = ""
        merged = "&".join(part for part in (request.GET.urlencode(), query) if part)
        response = HttpResponseRedirect("/oidc/logout" + (f"?{merged}" if merged else ""))
        response.status_code = 303
        return response
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET", "POST"])
    logout_request = read_logout_request(request)
    with translation.override(logout_request.language or translation.get_language()):
        who = login_services.signed_in(request)
        if who is None:
            request.session.pop(PENDING_LOGOUT, None)
            return _finish(request, redirect_to=logout_request.redirect_to, was_signed_in=False,
                           asked_redirect=logout_request.asked_redirect)
        current = browser_sso_session(request, who)
        if logout_request.trusted and current is not None and logout_request.sid == current.sid:
            frames = sign_out_of_portals(request, initiator=logout_request.client)
            return _finish(request, redirect_to=logout_request.redirect_to, was_signed_in=True,
                           asked_redirect=logout_request.asked_redirect, frames=frames,
                           portal=logout_request.client.name if logout_request.client else None)
        request.session[PENDING_LOGOUT] = {
            "redirect_to": logout_request.redirect_to,
            "asked_redirect": logout_request.asked_redirect,
            "language": logout_request.language,
            "portal": logout_request.client.name if logout_request.client else None,
        }
        return render(request, "oidc/logout_confirm.html", {
            "portals": _portal_names(request, who),
            "asking": logout_request.client.name if logout_request.client else None})


@never_cache
@require_POST  # and CSRF-protected, as every POST of ours
def confirm_end_session(request):
    """The citizen's answer to the confirmation page: ``decision=sign_out`` signs this browser
    out of Chave and every portal (all of them are told, none is trusted as the initiator), then
    goes back to the portal only when the request was trusted; ``decision=stay`` changes
    nothing and leaves for the portal (when trusted) or the home page."""
    pending = request.session.get(PENDING_LOGOUT) or {}
    redirect_to = pending.get("redirect_to") if isinstance(pending.get("redirect_to"), str) else None
    decision = request.POST.get("decision")
    with translation.override(pending.get("language") or translation.get_language()):
        if decision not in ("sign_out", "stay"):
            who = login_services.signed_in(request)
            return render(request, "oidc/logout_confirm.html", {"portals": _portal_names(request, who)}, status=400)
        request.session.pop(PENDING_LOGOUT, None)
        if decision == "stay":
            return HttpResponseRedirect(redirect_to) if redirect_to else redirect("public:home")
        was_signed_in = login_services.signed_in(request) is not None
        frames = sign_out_of_portals(request) if was_signed_in else []
        return _finish(request, redirect_to=redirect_to, was_signed_in=was_signed_in,
                       asked_redirect=bool(pending.get("asked_redirect")), frames=frames,
                       portal=pending.get("portal") if isinstance(pending.get("portal"), str) else None)
