"""The interactive two-factor login: identifier + PIN → channel → code → signed in.

Views call these; each step checks the transaction is the session's, unexpired and at the
right step. The session is rotated when the PIN is accepted and again when the login
completes, and then holds :class:`SignedIn` (who, how, at which assurance level, when).

Errors: a step taken on a transaction that has moved on (a second tab, a replayed request)
raises :class:`StaleTransaction`; views answer it like an expired login.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import uuid
from dataclasses import asdict, dataclass, field

from django.db import transaction
from django.db.models import F

from chave import clock, policy
from chave.audit import services as audit
from chave.codes import services as codes
from chave.codes.models import Purpose
from chave.compiled import Compiled, Inserter
from chave.delivery.providers import enabled_channels
from chave.identity import services as identity
from chave.identity.models import Citizen, ContactKind, Key, KeyStatus, mask

from .models import LoginTransaction
from .signals import signed_in as signed_in_signal
from .signals import signed_out

SESSION_TRANSACTION = "chave.login.transaction"
SESSION_SIGNED_IN = "chave.signed_in"
SESSION_FOR = "chave.login.for"
CHANNEL_OF_KIND = {ContactKind.MOBILE: "sms", ContactKind.EMAIL: "email", ContactKind.X: "x"}
KIND_OF_CHANNEL = {channel: kind for kind, channel in CHANNEL_OF_KIND.items()}
# A login that passed the PIN may finish while the key is locked: the lock stops PIN guessing,
# and anyone who knows the number could otherwise lock the owner out mid-login. Any other state
# (blocked, cancelled, expired) ends the login.
USABLE_KEY_STATUSES = {KeyStatus.ACTIVE, KeyStatus.LOCKED}


class StaleTransaction(Exception):
    """The login transaction is no longer at the step the request was made for."""


@dataclass(frozen=True)
class ChannelOption:
    channel: str
    masked: str
    assurance_level: int
    destination: str = field(default="", repr=False, compare=False)  # where a code goes; never shown
    # An approval in the app: the key's active devices as they were read for this option.
    devices: tuple = field(default=(), repr=False, compare=False)


@dataclass(frozen=True)
class SignedIn:
    key_id: int
    citizen_id: int
    full_name: str
    method: str  # sms | email | x | citizen_card | app | app_offline | app_approve | app_qr
    assurance_level: int
    auth_time: str  # ISO 8601


def _ip_or_none(text: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address((text or "").strip()))
    except ValueError:
        return None


def client_ip(request) -> str | None:
    """The client's address: REMOTE_ADDR, or the address our trusted proxies saw.

    A forwarded value that is not an IP address is ignored (it would break the audit's IP column).
    """
    from django.conf import settings

    hops = settings.CHAVE_TRUSTED_PROXIES
    if hops:
        forwarded = [p.strip() for p in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if p.strip()]
        if len(forwarded) >= hops:
            found = _ip_or_none(forwarded[-hops])
            if found:
                return found
    return _ip_or_none(request.META.get("REMOTE_ADDR"))


@dataclass(frozen=True)
class LoginFor:
    """A portal's request for a login: its name, the lowest level it accepts, where to go back."""

    portal: str
    min_level: int
    return_to: str
    login_hint: str = ""  # what the portal says the citizen will type (pre-filled, never looked up)
    # The portal's presentation of the sign-in methods (SAML AuthTabPresentationPolicies): which of
    # "pin" (number + PIN + code), "app" (the app's QR code), "card" (Citizen Card) to leave out
    # and which to show first. Presentation only: a method left out is not refused.
    hide: tuple = ()
    first: str = ""
    # Where "Cancel and go back to the portal" posts (the protocol's own answer to the portal: an
    # OpenID Connect ``access_denied``, a SAML ``AuthnFailed``); empty: no such button.
    cancel_to: str = ""
    # Names this request in the cancel form, so that a page left open in another tab cannot
    # cancel a newer request (of another portal) made since.
    reference: str = ""


LOGIN_METHODS = ("pin", "app", "card")


def _local_path(path: str) -> bool:
    return path.startswith("/") and not path.startswith("//")


def request_login(request, *, portal: str, min_level: int, return_to: str, login_hint: str = "",
                  hide=(), first: str = "", cancel_to: str = "") -> None:
    """Ask for a login on behalf of a portal (the OIDC provider calls this before redirecting).

    ``return_to`` must be a path on this service; the login returns there once complete.
    ``login_hint`` pre-fills the identifier field. ``hide`` and ``first`` (of
    :data:`LOGIN_METHODS`) arrange the sign-in page as the portal asks; hiding every method hides
    none. ``cancel_to``, a path on this service, is where the login pages' "Cancel and go back to
    the portal" button posts (the protocol answers the portal there, after :func:`cancel_login`).
    """
    if not _local_path(return_to) or (cancel_to and not _local_path(cancel_to)):
        raise ValueError("return_to and cancel_to must be local paths")
    hide = tuple(m for m in LOGIN_METHODS if m in hide)
    if len(hide) == len(LOGIN_METHODS):
        hide = ()
    first = first if first in LOGIN_METHODS and first not in hide else ""
    request.session[SESSION_FOR] = {
        **asdict(LoginFor(portal, int(min_level), return_to, login_hint, hide, first, cancel_to,
                          uuid.uuid4().hex if cancel_to else "")),
        "at": clock.now().isoformat()}


def login_methods(target: LoginFor | None) -> list[str]:
    """The sign-in methods the page shows, in order: the portal's first choice, then the others,
    less those it hid."""
    methods = [m for m in LOGIN_METHODS if not target or m not in target.hide]
    if target and target.first in methods:
        methods.remove(target.first)
        methods.insert(0, target.first)
    return methods


def login_for(request) -> LoginFor | None:
    """The portal's pending request, if one was made within a login transaction's lifetime.

    An abandoned request expires like a login does: a citizen who comes back later and signs in
    from Chave's own pages is not sent to a portal they left, nor shown its name and level.
    """
    data = dict(request.session.get(SESSION_FOR) or {})
    try:
        made = dt.datetime.fromisoformat(data.pop("at"))
        if clock.now() - made > dt.timedelta(seconds=policy.get("login_transaction_seconds")):
            return None
        if "hide" in data:
            data["hide"] = tuple(data["hide"])
        return LoginFor(**data)
    except (KeyError, TypeError, ValueError):
        return None


def after_login_url(request) -> str | None:
    """Where a completed login goes: back to the portal's request, if one sent the citizen."""
    target = login_for(request)
    request.session.pop(SESSION_FOR, None)
    return target.return_to if target else None


def may_cancel(request, reference: str) -> bool:
    """Whether a cancel form names the portal's request this session is signing in for now
    (``LoginFor.reference``): not one answered, expired or replaced by a newer request since."""
    import hmac

    target = login_for(request)
    return bool(target and target.reference and hmac.compare_digest(target.reference, str(reference or "")))


def cancel_login(request) -> Citizen | None:
    """The citizen gave up the portal's login ("Cancel and go back to the portal"): the portal's
    request and any open login transaction of this session end (a Chave session already signed in
    stays). Returns the citizen the login had identified (after the PIN), or the one signed in,
    for the audit; None when nobody was identified."""
    tx = current(request)
    request.session.pop(SESSION_FOR, None)
    if tx is not None:
        abandon(request, tx)
        return tx.key.citizen
    who = signed_in(request)
    return Citizen.objects.filter(pk=who.citizen_id).first() if who else None


def channel_options(key: Key, min_level: int = 0) -> list[ChannelOption]:
    """The key's verified contacts that an enabled channel can reach at ``min_level`` or more,
    best level first."""
    enabled = enabled_channels()
    options = []
    for contact in key.verified_contacts():
        channel = CHANNEL_OF_KIND[contact.kind]
        level = policy.assurance_level(channel)
        if channel in enabled and level >= min_level:
            options.append(ChannelOption(channel, mask(contact.kind, contact.value), level, contact.value))
    return sorted(options, key=lambda o: (-o.assurance_level, o.channel))


def login_options(key: Key, min_level: int = 0) -> list[ChannelOption]:
    """What the login's channel page offers: :func:`channel_options`, and, when the key has an
    active device of the Chave app (``chave.app``) and the level allows, a code in the app on
    each device (channel ``app:<device id>``, when the app channel is on), an approval in the
    app and an offline code from the app. Best level first; the app before SMS at the same level."""
    from chave.app import services as app

    options = channel_options(key, min_level)
    level = policy.assurance_level("app")
    devices = app.active_device_list(key) if level >= min_level else []
    if not devices:
        return options
    extra = [ChannelOption(f"{app.APP_CODE}:{d.pk}", d.name, level) for d in devices if "app" in enabled_channels()]
    extra += [ChannelOption(app.APP_APPROVE, "", level, devices=tuple(devices)),
              ChannelOption(app.APP_OFFLINE, "", level)]
    ranked = sorted([*extra, *options], key=lambda o: (-o.assurance_level, not o.channel.startswith("app")))
    return ranked


def usual_channel(key: Key, options: list[ChannelOption]) -> str | None:
    """The channel page's option chosen beforehand: the one the key's last completed login used,
    while it is still offered (a number or device since removed is not); none for a first login.
    The citizen still chooses: it only spares a tap to whoever signs in the same way each time."""
    last = (LoginTransaction.objects.filter(key=key, status=LoginTransaction.Status.COMPLETED)
            .exclude(channel="").order_by("-completed_at").values_list("channel", flat=True).first())
    return last if last in {o.channel for o in options} else None


def start(request, *, key: Key, must_change_pin: bool, portal: str = "", required_level: int = 0) -> LoginTransaction:
    """After a correct PIN: open the login transaction and bind it to a fresh session.

    The session key is rotated here, so a session id planted before the PIN step (session
    fixation) never carries a login.
    """
    now = clock.now()
    tx = _NEW.create(
        key=key, portal=portal, required_level=required_level, must_change_pin=must_change_pin,
        ip=client_ip(request), created_at=now,
        expires_at=now + dt.timedelta(seconds=policy.get("login_transaction_seconds")),
    )
    request.session.cycle_key()
    request.session[SESSION_TRANSACTION] = str(tx.pk)
    return tx


_NEW = Inserter(LoginTransaction)
# A transaction waiting for its last step, completed (once: a concurrent request finds it done).
_COMPLETE = Compiled(
    lambda pk, now: LoginTransaction.objects.filter(pk=pk, status__in=[
        LoginTransaction.Status.CODE_SENT, LoginTransaction.Status.PIN_CHANGE, LoginTransaction.Status.APP_WAIT]),
    uuid.UUID, dt.datetime, update=lambda pk, now: {"status": LoginTransaction.Status.COMPLETED, "completed_at": now})
_WITH_KEY = Compiled(lambda pk: LoginTransaction.objects.select_related("key__citizen").filter(pk=pk)[:1], uuid.UUID)


def current(request, *statuses: str) -> LoginTransaction | None:
    """The session's login transaction, if unexpired, its key still usable, and (when
    ``statuses`` are given) at one of them; else None."""
    tx_id = request.session.get(SESSION_TRANSACTION)
    try:
        tx_id = uuid.UUID(str(tx_id)) if tx_id else None
    except ValueError:
        tx_id = None
    if tx_id is None:
        return None
    tx = _WITH_KEY.first(tx_id)
    now = clock.now()
    if tx is None or tx.expires_at <= now or tx.key.effective_status(now) not in USABLE_KEY_STATUSES:
        return None
    if statuses and tx.status not in statuses:
        return None
    return tx


def send_code(tx: LoginTransaction, channel: str, *, ip: str | None, language: str,
              options: list[ChannelOption] | None = None) -> codes.IssueResult | None:
    """Send (or resend) the login code by ``channel``; None when the key has no such channel.
    ``options``: :func:`login_options` of the transaction, when the caller has just read them.

    The code and the transaction's channel, destination and assurance level are written in one
    database transaction: a code can never be verified against the level of another channel.
    Refusals (cooldown, send caps, country) come back as the ``IssueResult`` and change nothing.
    """
    if options is None:
        options = login_options(tx.key, tx.required_level)
    chosen = next((o for o in options if o.channel == channel), None)
    if chosen is None:
        return None
    if channel.startswith("app:"):  # a code to one device of the Chave app: its id is the destination
        channel, destination = channel.split(":", 1)
    elif channel in KIND_OF_CHANNEL:
        destination = chosen.destination
    else:
        return None
    with transaction.atomic(savepoint=False):  # a refusal returns; nothing here is caught and retried
        result = codes.issue_code(
            tx.key, purpose=Purpose.LOGIN, transaction=str(tx.pk), channel=channel, destination=destination,
            ip=ip, portal=tx.portal or "Chave", language=language,
        )
        if result.sent:
            _moved(tx, status=LoginTransaction.Status.CODE_SENT, channel=channel, destination=destination,
                   assurance_level=policy.assurance_level(channel))
    return result


def use_offline_codes(tx: LoginTransaction, options: list[ChannelOption] | None = None) -> bool:
    """The citizen will type an offline code from the Chave app: the code step, with no code
    sent (the app makes it). False when the key has no active device."""
    from chave.app import services as app

    if options is None:
        options = login_options(tx.key, tx.required_level)
    if app.APP_OFFLINE not in {o.channel for o in options}:
        return False
    _moved(tx, status=LoginTransaction.Status.CODE_SENT, channel=app.APP_OFFLINE, destination="",
           assurance_level=policy.assurance_level("app"))
    return True


def ask_approval(tx: LoginTransaction, *, ip: str | None, options: list[ChannelOption] | None = None):
    """Ask the key's devices to approve this login (number matching; ``chave.app``). The login
    then waits (``APP_WAIT``) for :func:`approved`. Returns the app's ``ApprovalStarted``.
    ``options``: :func:`login_options` of the transaction, when the caller has just read them."""
    from chave.app import services as app

    if options is None:
        options = login_options(tx.key, tx.required_level)
    approve = next((o for o in options if o.channel == app.APP_APPROVE), None)
    if approve is None:
        return app.ApprovalStarted(False, "no_device")
    started = app.request_approval(tx.key, login_transaction=str(tx.pk), portal=tx.portal, ip=ip,
                                   required_level=tx.required_level, devices=list(approve.devices))
    if started.ok:
        _moved(tx, status=LoginTransaction.Status.APP_WAIT, channel=app.APP_APPROVE, destination="",
               assurance_level=policy.assurance_level("app"))
    return started


def _moved(tx: LoginTransaction, **fields) -> None:
    """Write ``fields`` to the transaction's row and to ``tx``."""
    kinds = tuple((name, next((k for k in (str, int, dt.datetime) if isinstance(value, k)), None))
                  for name, value in fields.items())
    if any(kind is None or isinstance(fields[name], bool) for name, kind in kinds):
        LoginTransaction.objects.filter(pk=tx.pk).update(**fields)
    else:
        _moves(kinds).update(tx.pk, *fields.values())
    for name, value in fields.items():
        setattr(tx, name, value)


@functools.cache
def _moves(kinds: tuple[tuple[str, type], ...]) -> Compiled:
    """The UPDATE of :func:`_moved` for these fields (of these types), compiled once."""
    names = [name for name, _kind in kinds]
    return Compiled(lambda pk, *values: LoginTransaction.objects.filter(pk=pk), uuid.UUID,
                    *(kind for _name, kind in kinds), update=lambda pk, *values: dict(zip(names, values)))


def abandon(request, tx: LoginTransaction) -> None:
    """End a login that was refused (a wrong number or "not me" in the app): it cannot go on."""
    LoginTransaction.objects.filter(pk=tx.pk).exclude(status=LoginTransaction.Status.COMPLETED).update(
        expires_at=clock.now())
    request.session.pop(SESSION_TRANSACTION, None)


def _past_second_factor(request, tx: LoginTransaction, *, from_status: str) -> None:
    """The second factor is done: on to the PIN change (a temporary PIN), else complete."""
    if tx.must_change_pin:
        moved = LoginTransaction.objects.filter(pk=tx.pk, status=from_status).update(
            status=LoginTransaction.Status.PIN_CHANGE)
        if moved != 1:
            raise StaleTransaction()
        tx.status = LoginTransaction.Status.PIN_CHANGE
    else:
        complete(request, tx)


def approved(request, tx: LoginTransaction, waiting=None) -> bool:
    """Whether the app approved this waiting login; if so (once), it moves on as a right code does.
    ``waiting``: the login's approval request (``app.approval_of``), when the caller has just read
    it. Raises :class:`StaleTransaction` when another request took it first."""
    from chave.app import services as app

    taken = app.take_approval(str(tx.pk), waiting)
    if taken is None:
        return False
    _moved(tx, destination=str(taken.device_id or ""))
    tx.device_name = taken.device.name if taken.device else None  # read with the request: named in the history
    _past_second_factor(request, tx, from_status=LoginTransaction.Status.APP_WAIT)
    return True


def verify(request, tx: LoginTransaction, submitted: str) -> codes.VerifyResult:
    """Check the code (a code sent, or an offline code of the Chave app); on success the login
    completes (or moves to the PIN change).

    Raises :class:`StaleTransaction` when the code was right but the transaction had already
    moved on (it cannot, as the code is single use; kept as a guard).
    """
    from chave.app import services as app

    ip = client_ip(request)
    if tx.channel == app.APP_OFFLINE:
        checked = app.verify_offline_code(tx.key, transaction_id=str(tx.pk), submitted=submitted,
                                          attempts=tx.wrong_attempts, ip=ip)
        result = checked.result
        if result.reason in ("wrong", "spent") and not result.ok:
            LoginTransaction.objects.filter(pk=tx.pk).update(wrong_attempts=F("wrong_attempts") + 1)
        if result.ok:
            _moved(tx, destination=str(checked.device.pk))
            tx.device_name = checked.device.name
            _past_second_factor(request, tx, from_status=LoginTransaction.Status.CODE_SENT)
        return result
    # The code is spent and the login completed in one transaction: both happen, or neither.
    with transaction.atomic():
        result = codes.verify_code(purpose=Purpose.LOGIN, transaction=str(tx.pk), submitted=submitted, ip=ip)
        if result.ok:
            _past_second_factor(request, tx, from_status=LoginTransaction.Status.CODE_SENT)
    return result


def complete(request, tx: LoginTransaction) -> SignedIn:
    """Finish the login: mark the transaction completed (once), record the use of the key and
    the audit event ``login`` with its assurance level, rotate the session and put
    :class:`SignedIn` in it.

    Raises :class:`StaleTransaction` when the transaction is not waiting to complete (already
    completed, e.g. by a concurrent request).
    """
    now = clock.now()
    with transaction.atomic(savepoint=False):  # StaleTransaction fails the caller's transaction too
        updated = _COMPLETE.update(tx.pk, now)
        if updated != 1:
            raise StaleTransaction()
        identity.record_login(tx.key, at=now)
        audit.record("login", outcome="ok", citizen=tx.key.citizen, channel=tx.channel, ip=client_ip(request),
                     level=tx.assurance_level, portal=tx.portal or None, **_device_detail(tx))
    signed_in = SignedIn(
        key_id=tx.key_id, citizen_id=tx.key.citizen_id, full_name=tx.key.citizen.full_name,
        method=tx.channel, assurance_level=tx.assurance_level, auth_time=now.isoformat(),
    )
    request.session.pop(SESSION_TRANSACTION, None)
    return sign_in(request, signed_in)


def _device_detail(tx: LoginTransaction) -> dict:
    """For a login by the Chave app, the device used, named in the history."""
    from chave.app import services as app

    if tx.channel not in app.APP_METHODS or not tx.destination:
        return {}
    name = getattr(tx, "device_name", None)  # the device as the step that used it read it
    return {"device": tx.destination, "device_name": (name if name is not None else app.device_label(tx.destination))
            or None}


def complete_app_login(request, key: Key, *, device, portal: str = "") -> SignedIn:
    """Sign in, on this browser, the holder of ``key`` who approved a QR sign-in in the Chave app
    with the device and the PIN (``chave.app``): method ``app_qr`` at the app's level, recorded
    as a use of the key, audited as ``login`` with the device, session rotated (:func:`sign_in`)."""
    from chave.app import services as app

    now = clock.now()
    level = policy.assurance_level("app")
    with transaction.atomic():
        identity.record_login(key, at=now)
        audit.record("login", outcome="ok", citizen=key.citizen, channel=app.APP_QR, ip=client_ip(request),
                     level=level, portal=portal or None, device=str(device.pk), device_name=device.name)
    request.session.pop(SESSION_TRANSACTION, None)
    return sign_in(request, SignedIn(
        key_id=key.pk, citizen_id=key.citizen_id, full_name=key.citizen.full_name, method=app.APP_QR,
        assurance_level=level, auth_time=now.isoformat(),
    ))


def sign_in(request, who: SignedIn) -> SignedIn:
    """Put ``who`` in this browser's session, under a new session key (no fixation), and send
    :data:`chave.login.signals.signed_in`. Every way of signing in (the key's login, the Citizen
    Card) ends here, so the apps that track a key's sessions see them all."""
    request.session.cycle_key()
    request.session[SESSION_SIGNED_IN] = asdict(who)
    signed_in_signal.send(sender=sign_in, request=request, who=who)
    return who


def complete_card_login(request, key: Key, *, certificate_serial: str = "") -> SignedIn:
    """Sign in the holder of a Citizen Card that :mod:`chave.card` has verified: method
    ``citizen_card`` at the card's assurance level, recorded as a use of ``key``, audited as
    ``login``, session rotated (:func:`sign_in`). Any open PIN login of the session is dropped."""
    now = clock.now()
    level = policy.assurance_level("citizen_card")
    target = login_for(request)
    with transaction.atomic():
        identity.record_login(key, at=now)
        audit.record("login", outcome="ok", citizen=key.citizen, channel="citizen_card", ip=client_ip(request),
                     level=level, portal=target.portal if target else None,
                     certificate_serial=certificate_serial or None)
    request.session.pop(SESSION_TRANSACTION, None)
    return sign_in(request, SignedIn(
        key_id=key.pk, citizen_id=key.citizen_id, full_name=key.citizen.full_name, method="citizen_card",
        assurance_level=level, auth_time=now.isoformat(),
    ))


def pin_login_reaches(level: int) -> bool:
    """Whether a PIN and a code by some channel reach assurance ``level`` (only the Citizen Card
    reaches the highest level)."""
    return any(policy.assurance_level(channel) >= level for channel in [*CHANNEL_OF_KIND.values(), "app"])


def set_new_pin(request, tx: LoginTransaction, new_pin: str) -> SignedIn:
    """Replace the temporary PIN the login started with, then complete the login.

    Only for a transaction whose code was verified and whose key has a temporary PIN.
    Raises ``ValidationError`` (from :func:`chave.identity.services.change_pin`) when the PIN
    breaks the rules or equals the temporary one, :class:`StaleTransaction` when the
    transaction is not at the PIN change step.
    """
    if tx.status != LoginTransaction.Status.PIN_CHANGE:
        raise StaleTransaction()
    identity.change_pin(tx.key, new_pin, ip=client_ip(request), reason="first use of temporary PIN")
    return complete(request, tx)


def signed_in(request) -> SignedIn | None:
    """Who is signed in in this session (with method and assurance level), or None."""
    data = request.session.get(SESSION_SIGNED_IN)
    return SignedIn(**data) if data else None


def sign_out(request) -> list[str]:
    """End the session (audited as ``logout`` when someone was signed in).

    Sends :data:`chave.login.signals.signed_out` before the session is flushed, so that the apps
    that keep state tied to it (the OpenID Connect provider's single sign-on session) end it too.
    Returns the URLs its receivers asked the signed-out page to load in frames (the portals'
    front-channel logout URIs), in order, each once.
    """
    who = signed_in(request)
    if who:
        citizen = Citizen.objects.filter(pk=who.citizen_id).first()
        audit.record("logout", outcome="ok", citizen=citizen, ip=client_ip(request))
    answers = signed_out.send(sender=sign_out, request=request, who=who)
    request.session.flush()
    return list(dict.fromkeys(url for _receiver, urls in answers for url in (urls or [])))
