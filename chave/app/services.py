"""The Chave app's operations. The login pages, the personal area, the counter and the app API
call these; every write of the app's state goes through here, and each security-relevant step
is audited (never with a code, a PIN, a key or a secret).

Contracts in short (refusals are :class:`AppRefusal` with a machine code, an HTTP status and a
sentence in the caller's language, or a result value with a ``reason``):

- Pairing. :func:`start_pairing` (personal area, level ≥ 3) makes a single-use short code that
  lasts ``app_pairing_seconds``; :func:`register_device` (the app, signing with its new key)
  spends it, records the device ``pending`` and sends a code by SMS to the key's mobile number;
  :func:`confirm_device` checks that code, makes the device ``active`` (at most
  ``app_max_devices``) and returns the offline-code secret, once. Every contact is told.
- Devices. :func:`rename_device`, :func:`remove_device` (the citizen, the app, a clerk with a
  reason); the key's cancellation or block, or a new mobile number, remove them all.
- Calls. :func:`authenticate` checks a device's signed call (``signatures.py``).
- Codes by the app. A code is issued by :mod:`chave.codes` for channel ``app`` and destination
  the device's id; the delivery worker hands it to :class:`chave.app.push.AppDelivery`, which
  puts it in the device's inbox (:func:`put_in_inbox`) and pushes it. :func:`inbox` is what the
  app reads.
- Approvals (number matching). :func:`request_approval` (a login past its PIN) shows the page a
  number and the app three; :func:`answer_approval` takes the tap, signed by the device; a wrong
  number refuses the login, "This wasn't me" refuses it and locks the key.
  :func:`take_approval` lets the login complete once.
- Offline codes. :func:`verify_offline_code`: RFC 6238 (HMAC-SHA-256, the device's period, one
  step of drift either way), each step accepted once per device, wrong entries counted.
- QR sign-in. :func:`start_qr` (a computer), :func:`qr_codes` (what its page shows now),
  :func:`scan_qr` and :func:`approve_qr` (the app, with the PIN), :func:`take_qr` (the computer
  completes once).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import pyotp
from cryptography.fernet import InvalidToken
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.translation import gettext_lazy as _

from chave import clock, policy, sealing
from chave.audit import services as audit
from chave.codes import services as codes
from chave.codes.models import Purpose
from chave.compiled import Compiled, Inserter
from chave.delivery import sealing as message_sealing
from chave.delivery import services as delivery
from chave.identity import services as identity
from chave.identity.models import ContactKind, Key, KeyStatus, mask
from chave.throttle import services as throttle

from . import signatures
from .models import Device, DeviceNonce, DeviceStatus, InboxItem, Pairing, SignInRequest

# The methods a login by the app is recorded with (``SignedIn.method``, the audit's channel):
# a code pushed to the app and typed on the page, an offline code, an approval by number
# matching, and QR sign-in (the device and the PIN typed in the app).
APP_CODE, APP_OFFLINE, APP_APPROVE, APP_QR = "app", "app_offline", "app_approve", "app_qr"
APP_METHODS = (APP_CODE, APP_OFFLINE, APP_APPROVE, APP_QR)
CHANNEL = "app"
USABLE_KEY = {KeyStatus.ACTIVE, KeyStatus.LOCKED}
# Short codes: letters and digits a person cannot confuse (Crockford's base 32).
PAIRING_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PAIRING_CODE_LENGTH = 8
# The handle that starts a QR sign-in's typed code: consonants only (no words), no look-alikes.
HANDLE_ALPHABET = "BCDFGHJKMNPQRSTVWXZ"
HANDLE_LENGTH = 4
QR_TYPED_DIGITS = 4
SEAL_PURPOSE = "app-offline-secret"
OFFLINE_SECRET_BYTES = 32


class AppRefusal(Exception):
    """A refusal the app (or a page) shows: ``code`` for programs, ``message`` for people."""

    def __init__(self, status: int, code: str, message, *, retry_after: int | None = None):
        super().__init__(code)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


def _throttled(decision: throttle.ThrottleDecision) -> AppRefusal:
    return AppRefusal(429, "throttled", _("Too many attempts. Please try again later."),
                      retry_after=decision.retry_after_seconds)


def _hash(label: str, value: str) -> str:
    key = (settings.CHAVE_PIN_PEPPER + "/app/" + label).encode()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def _key_usable(key: Key, now: dt.datetime | None = None) -> bool:
    return key.effective_status(now or clock.now()) in USABLE_KEY


def active_devices(key: Key):
    return Device.objects.filter(key=key, status=DeviceStatus.ACTIVE).order_by("activated_at", "created_at")


_ACTIVE_DEVICES = Compiled(lambda key: active_devices(Key(pk=key)), int)


def active_device_list(key: Key) -> list[Device]:
    """:func:`active_devices`, read with SQL compiled once (a login asks at every PIN)."""
    return _ACTIVE_DEVICES.all(key.pk)


def device_of_key(key: Key, device_id) -> Device | None:
    """The key's active device ``device_id`` (a string from a form or a transaction), else None."""
    try:
        device_id = uuid.UUID(str(device_id))
    except ValueError:
        return None
    return next((device for device in active_device_list(key) if device.pk == device_id), None)


def signing_device(key: Key) -> Device | None:
    """Where a signing code for ``key`` goes in the app (as the CMD app receives it): the active
    device used last, when the app channel is on; None otherwise (the code goes by SMS)."""
    from chave.delivery.providers import enabled_channels

    if "app" not in enabled_channels():
        return None
    return active_devices(key).order_by("-last_seen_at", "-activated_at").first()


def device_label(device_id) -> str:
    """The name a device had, for a page or the history ("" when unknown)."""
    try:
        device_id = uuid.UUID(str(device_id))
    except ValueError:
        return ""
    found = _NAME.first(device_id)
    return found[0] if found else ""


_NAME = Compiled(lambda pk: Device.objects.filter(pk=pk).values_list("name")[:1], uuid.UUID, values=True)


def _mobile(key: Key):
    return key.contacts.filter(kind=ContactKind.MOBILE, verified_at__isnull=False, live=True).first()


# --- Pairing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MayPair:
    ok: bool
    reason: str = "ok"  # ok | too_many | no_mobile | level | key_unusable


def may_pair(key: Key, assurance_level: int) -> MayPair:
    """Whether this sign-in may add a device to ``key``: level 3 or more (the SMS code or the
    card), a verified mobile number (the pairing is confirmed by SMS), a usable key, and fewer
    than ``app_max_devices`` active devices."""
    if not _key_usable(key):
        return MayPair(False, "key_unusable")
    if assurance_level < policy.assurance_level("sms"):
        return MayPair(False, "level")
    if _mobile(key) is None:
        return MayPair(False, "no_mobile")
    if active_devices(key).count() >= policy.get("app_max_devices"):
        return MayPair(False, "too_many")
    return MayPair(True)


@dataclass(frozen=True)
class PairingStarted:
    pairing: Pairing
    code: str  # shown once on the page (and in its QR code); only its hash is kept

    @property
    def grouped(self) -> str:
        return f"{self.code[:4]} {self.code[4:]}"

    @property
    def link(self) -> str:
        """What the QR code holds: the app's address with the code (opened by a phone's camera)."""
        return f"{settings.CHAVE_PUBLIC_URL.rstrip('/')}/app/#pair={self.code}"


def normalise_pairing_code(text) -> str:
    """The code as stored: upper case, no spaces or dashes, Crockford's look-alikes read as digits."""
    if not isinstance(text, str):
        return ""
    cleaned = "".join(text.split()).replace("-", "").upper().translate(str.maketrans("OIL", "011"))
    return cleaned if len(cleaned) == PAIRING_CODE_LENGTH and all(c in PAIRING_ALPHABET for c in cleaned) else ""


def start_pairing(key: Key, *, assurance_level: int, ip: str | None) -> PairingStarted:
    """A new pairing code for ``key`` (earlier unused ones stop working). Raises
    :class:`AppRefusal` when :func:`may_pair` says no."""
    allowed = may_pair(key, assurance_level)
    if not allowed.ok:
        raise AppRefusal(403, allowed.reason, PAIR_REFUSALS[allowed.reason])
    now = clock.now()
    with transaction.atomic():
        Pairing.objects.filter(key=key, used_at__isnull=True, expires_at__gt=now).update(expires_at=now)
        while True:
            code = "".join(secrets.choice(PAIRING_ALPHABET) for _ in range(PAIRING_CODE_LENGTH))
            try:
                with transaction.atomic():
                    pairing = Pairing.objects.create(
                        key=key, code_hash=_hash("pairing", code), created_at=now, ip=ip,
                        expires_at=now + dt.timedelta(seconds=policy.get("app_pairing_seconds")))
                break
            except IntegrityError:  # the same code drawn twice: draw again
                continue
        audit.record("app.pairing", outcome="ok", citizen=key.citizen, channel="web", ip=ip, step="code_shown")
    return PairingStarted(pairing, code)


PAIR_REFUSALS = {
    "too_many": _("Your key already has the most devices allowed. Remove one first."),
    "no_mobile": _("Adding the app needs a mobile number on your key: the pairing is confirmed by SMS."),
    "level": _("Adding the app needs a sign-in with a code by SMS or with the Citizen Card."),
    "key_unusable": _("Your key cannot be used now."),
}


def _valid_name(name) -> str:
    if not isinstance(name, str):
        raise AppRefusal(400, "invalid_name", _("Give the device a name."))
    name = " ".join(name.split())
    if not name or not name.isprintable():
        raise AppRefusal(400, "invalid_name", _("Give the device a name."))
    if len(name) > policy.get("app_device_name_max_length"):
        raise AppRefusal(400, "invalid_name", _("The name is too long (at most %(n)d characters).")
                         % {"n": policy.get("app_device_name_max_length")})
    return name


def push_service_allowed(endpoint: str) -> bool:
    """Whether ``endpoint`` is on one of ``CHAVE_APP_PUSH_SERVICES`` (Chave's server will post to
    it: nothing else, so that a device cannot make Chave call an address of its choosing)."""
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.username or parts.password:
        return False
    for allowed in settings.CHAVE_APP_PUSH_SERVICES:
        a = urlsplit(allowed)
        if a.scheme != parts.scheme or a.port != port or not a.hostname:
            continue
        if parts.hostname == a.hostname or a.hostname.startswith("*.") and parts.hostname.endswith(a.hostname[1:]):
            return True
    return False


def parse_push_subscription(value) -> tuple[str, str, str]:
    """``(endpoint, p256dh, auth)`` from a browser's ``PushSubscription.toJSON()``; ``("", "", "")``
    for null. Raises :class:`AppRefusal` for anything else, or a push service not allowed."""
    if value is None:
        return "", "", ""
    refusal = AppRefusal(400, "invalid_push_subscription", _("The push subscription is not valid."))
    if not isinstance(value, dict) or not isinstance(value.get("keys"), dict):
        raise refusal
    endpoint, keys = value.get("endpoint"), value["keys"]
    p256dh, auth = keys.get("p256dh"), keys.get("auth")
    if not all(isinstance(v, str) for v in (endpoint, p256dh, auth)) or len(endpoint) > 1000:
        raise refusal
    try:
        point, secret = signatures.unb64url(p256dh), signatures.unb64url(auth)
    except ValueError:
        raise refusal from None
    if len(point) != 65 or point[0] != 4 or len(secret) != 16:
        raise refusal
    if not push_service_allowed(endpoint):
        raise AppRefusal(400, "push_service_not_allowed", _("This push service is not accepted."))
    return endpoint, p256dh, auth


def _language(value) -> str:
    return value if value in dict(settings.LANGUAGES) else "pt-pt"


@dataclass(frozen=True)
class Registered:
    device: Device
    sent_to: str  # the masked mobile number the confirmation code went to
    code_sent: bool
    reason: str  # sent | the code issue's refusal


def register_device(*, pairing_code, jwk, name, push=None, language="pt-pt", ip: str | None = None) -> Registered:
    """The app's first call: spend the pairing code, record the device (``pending``) with its
    public key, and send the confirmation code by SMS to the key's mobile number.

    The caller has checked that the call is signed by the private half of ``jwk``. Refusals
    (:class:`AppRefusal`): throttled per address, then per key; an unknown, used or expired code
    (one answer for all three); a key that cannot be used, has no mobile number or has the most
    devices; a bad key, name or push subscription; a key already paired (409).
    """
    gate = throttle.hit(("app_pairing_per_ip", ip or ""))
    if not gate.allowed:
        raise _throttled(gate)
    name = _valid_name(name)
    try:
        signatures.public_key(jwk)
    except signatures.BadKey:
        raise AppRefusal(400, "invalid_public_key", _("The device key is not valid.")) from None
    endpoint, p256dh, auth = parse_push_subscription(push)
    code = normalise_pairing_code(pairing_code)
    now = clock.now()
    pairing = (Pairing.objects.select_related("key__citizen").filter(code_hash=_hash("pairing", code)).first()
               if code else None)
    wrong = AppRefusal(400, "invalid_pairing_code", _("This pairing code is not valid: it may have expired or "
                                                      "been used. Ask for a new one in the personal area."))
    if pairing is None:
        audit.record("app.pairing", outcome="wrong_code", channel=CHANNEL, ip=ip)
        raise wrong
    key = pairing.key
    gate = throttle.hit(("app_pairing_per_key", str(key.pk)))
    if not gate.allowed:
        raise _throttled(gate)
    thumb = signatures.thumbprint(jwk)
    with transaction.atomic():
        won = Pairing.objects.filter(pk=pairing.pk, used_at__isnull=True, expires_at__gt=now).update(used_at=now)
        if won != 1:
            audit.record("app.pairing", outcome="used_or_expired", citizen=key.citizen, channel=CHANNEL, ip=ip)
            raise wrong
        allowed = may_pair(key, policy.assurance_level("sms"))
        if not allowed.ok:
            raise AppRefusal(403, allowed.reason, PAIR_REFUSALS[allowed.reason])
        if Device.objects.filter(thumbprint=thumb).exists():
            raise AppRefusal(409, "key_already_paired", _("This device key is paired already."))
        try:
            with transaction.atomic():
                device = Device.objects.create(
                    key=key, pairing=pairing, name=name, public_key=signatures.canonical_jwk(jwk), thumbprint=thumb,
                    push_endpoint=endpoint, push_p256dh=p256dh, push_auth=auth, language=_language(language),
                    offline_period=policy.get("app_offline_default_period"),
                    confirm_transaction=f"device-{uuid.uuid4().hex}", created_at=now, last_seen_at=now)
        except IntegrityError:
            raise AppRefusal(409, "key_already_paired", _("This device key is paired already.")) from None
        audit.record("app.pairing", outcome="ok", citizen=key.citizen, channel=CHANNEL, ip=ip, step="registered",
                     device=str(device.pk), device_name=device.name)
    issue = send_confirmation(device, ip=ip)
    return Registered(device, mask(ContactKind.MOBILE, _mobile(key).value), issue.sent, issue.reason)


def send_confirmation(device: Device, *, ip: str | None) -> codes.IssueResult:
    """(Again) the SMS code that confirms a pending device; cooldown and send caps apply."""
    mobile = _mobile(device.key)
    if device.status != DeviceStatus.PENDING or mobile is None:
        return codes.IssueResult(False, "not_pending")
    return codes.issue_code(device.key, purpose=Purpose.DEVICE, transaction=device.confirm_transaction,
                            channel="sms", destination=mobile.value, ip=ip, language=device.language)


@dataclass(frozen=True)
class Confirmed:
    ok: bool
    reason: str  # ok | the code check's reason | too_many | key_unusable | not_pending
    secret: str = ""  # base64url, once
    attempts_left: int = 0


def confirm_device(device: Device, submitted, *, ip: str | None) -> Confirmed:
    """Check the SMS code typed in the app; when right the device becomes active (if the key has
    room) with a new offline-code secret, returned once, and every contact of the key is told."""
    if device.status != DeviceStatus.PENDING:
        return Confirmed(False, "not_pending")
    result = codes.verify_code(purpose=Purpose.DEVICE, transaction=device.confirm_transaction, submitted=submitted,
                               ip=ip)
    if not result.ok:
        return Confirmed(False, result.reason, attempts_left=result.attempts_left)
    secret = secrets.token_bytes(OFFLINE_SECRET_BYTES)
    now = clock.now()
    with transaction.atomic():
        key = Key.locked(device.key_id)
        if not _key_usable(key, now):
            return Confirmed(False, "key_unusable")
        if active_devices(key).count() >= policy.get("app_max_devices"):
            _remove(Device.objects.get(pk=device.pk), by="not_confirmed", reason="too many devices", now=now)
            return Confirmed(False, "too_many")
        won = Device.objects.filter(pk=device.pk, status=DeviceStatus.PENDING).update(
            status=DeviceStatus.ACTIVE, activated_at=now,
            offline_secret_sealed=sealing.seal(signatures.b64url(secret), secret=settings.CHAVE_KEY_SEAL_SECRET,
                                               purpose=SEAL_PURPOSE))
        if won != 1:
            return Confirmed(False, "not_pending")
        audit.record("app.paired", outcome="ok", citizen=key.citizen, channel=CHANNEL, ip=ip, device=str(device.pk),
                     device_name=device.name)
        delivery.notify(key.citizen, "app_paired")
    device.refresh_from_db()
    return Confirmed(True, "ok", secret=signatures.b64url(secret))


# --- Devices ---------------------------------------------------------------------------------


def devices_of(key: Key):
    """The key's devices to list: active and waiting for their code, oldest first."""
    return Device.objects.filter(key=key, status__in=[DeviceStatus.ACTIVE, DeviceStatus.PENDING]).order_by("created_at")


def rename_device(device: Device, name, *, by: str, ip: str | None = None) -> Device:
    """Raises :class:`AppRefusal` for a bad name or a removed device."""
    name = _valid_name(name)
    if device.status == DeviceStatus.REMOVED:
        raise AppRefusal(410, "device_removed", _("This device was removed."))
    with transaction.atomic():
        Device.objects.filter(pk=device.pk).update(name=name)
        audit.record("app.rename", outcome="ok", citizen=device.key.citizen, channel=CHANNEL if by == "app" else "web",
                     ip=ip, device=str(device.pk), device_name=name, previous_name=device.name, by=by)
    device.name = name
    return device


def _remove(device: Device, *, by: str, reason: str = "", now: dt.datetime) -> bool:
    won = Device.objects.filter(pk=device.pk).exclude(status=DeviceStatus.REMOVED).update(
        status=DeviceStatus.REMOVED, removed_at=now, removed_by=by[:64], removed_reason=reason[:300],
        offline_secret_sealed="", push_endpoint="", push_p256dh="", push_auth="")
    if won:
        InboxItem.objects.filter(device=device).delete()
        SignInRequest.objects.filter(device=device, status=SignInRequest.Status.SCANNED).update(
            status=SignInRequest.Status.REFUSED, refusal="device_removed", answered_at=now)
    return bool(won)


def remove_device(device: Device, *, by: str, reason: str = "", ip: str | None = None, channel: str = "web",
                  notify: bool = True) -> bool:
    """Remove a device for good: it can no longer call, approve or make codes Chave accepts;
    its inbox is emptied. Audited (``app.removed``, with who and why) and told on every contact.
    Returns False when it was removed already."""
    with transaction.atomic():
        removed = _remove(device, by=by, reason=reason, now=clock.now())
        if removed:
            audit.record("app.removed", outcome="ok", citizen=device.key.citizen, channel=channel, ip=ip,
                         device=str(device.pk), device_name=device.name, by=by, reason=reason or None)
            if notify and device.status == DeviceStatus.ACTIVE:
                delivery.notify(device.key.citizen, "app_removed")
    return removed


def remove_all(key: Key, *, by: str) -> int:
    """Remove every device of ``key`` (inside the caller's transaction); told once."""
    devices = list(Device.objects.filter(key=key).exclude(status=DeviceStatus.REMOVED))
    removed = [d for d in devices if remove_device(d, by=by, channel="", notify=False)]
    if any(d.status == DeviceStatus.ACTIVE for d in removed):
        delivery.notify(key.citizen, "app_removed")
    return len(removed)


def on_key_cancelled(sender, *, key: Key, by: str, **kwargs) -> None:
    remove_all(key, by="key_cancelled")


def on_key_blocked(sender, *, key: Key, by: str, **kwargs) -> None:
    remove_all(key, by="key_blocked")


def on_contact_changed(sender, *, key: Key, kind: str, by: str, **kwargs) -> None:
    if kind == ContactKind.MOBILE:
        remove_all(key, by="mobile_changed")


# --- Signed calls ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedCall:
    device_id: str  # "-" while pairing
    timestamp: str
    nonce: str
    signature: str


def signed_call_headers(meta) -> SignedCall | None:
    values = [meta.get(h, "") for h in ("HTTP_CHAVE_DEVICE", "HTTP_CHAVE_TIMESTAMP", "HTTP_CHAVE_NONCE",
                                         "HTTP_CHAVE_SIGNATURE")]
    if not all(values) or any(len(v) > 200 for v in values):
        return None
    return SignedCall(*values)


def _signature_refusal(ip: str | None, code: str, message) -> AppRefusal:
    gate = throttle.hit(("app_bad_signature_per_ip", ip or ""))
    if not gate.allowed:
        return _throttled(gate)
    audit.record("app.signature", outcome=code, channel=CHANNEL, ip=ip)
    return AppRefusal(401, code, message)


def check_signature(request, body: bytes, jwk, call: SignedCall | None, *, ip: str | None,
                    address_checked: bool = False) -> None:
    """Check ``call`` (the request's signature headers) against ``jwk``: well formed, on time and
    valid. Raises :class:`AppRefusal` (401, or 429 once the address sent too many bad ones;
    ``address_checked``: the caller has just looked at that throttle)."""
    if not address_checked:
        gate = throttle.check(("app_bad_signature_per_ip", ip or ""))
        if not gate.allowed:
            raise _throttled(gate)
    if call is None or not signatures.NONCE.match(call.nonce) or not call.timestamp.isascii() \
            or not call.timestamp.isdigit() or len(call.timestamp) > 12:
        raise _signature_refusal(ip, "unsigned", _("This call must be signed by the device."))
    skew = abs(clock.now().timestamp() - int(call.timestamp))
    if skew > policy.get("app_signature_skew_seconds"):
        raise _signature_refusal(ip, "clock_skew", _("The device's clock is wrong: set the date and time."))
    message = signatures.signed_text(method=request.method, path=request.path, query=request.META.get("QUERY_STRING", ""),
                                     device=call.device_id, timestamp=call.timestamp, nonce=call.nonce, body=body)
    try:
        key = signatures.public_key(jwk)
    except signatures.BadKey:
        raise AppRefusal(400, "invalid_public_key", _("The device key is not valid.")) from None
    if not signatures.verify(key, call.signature, message):
        raise _signature_refusal(ip, "bad_signature", _("The signature of this call is not valid."))


_DEVICE_WITH_KEY = Compiled(lambda pk: Device.objects.select_related("key__citizen").filter(pk=pk)[:1], uuid.UUID)
_NEW_NONCE = Inserter(DeviceNonce)


def authenticate(request, body: bytes, *, ip: str | None, pending: bool = False) -> Device:
    """The device that signed this call, after checking the signature, the time and the nonce
    (once only). ``pending``: a device waiting for its SMS code may make this call. Raises
    :class:`AppRefusal`: 401 unsigned, badly signed, replayed or unknown; 403 removed (or not
    confirmed yet); 429 throttled."""
    call = signed_call_headers(request.META)
    gate = throttle.check(("app_bad_signature_per_ip", ip or ""))
    if not gate.allowed:
        raise _throttled(gate)
    try:
        device_id = uuid.UUID(request.META.get("HTTP_CHAVE_DEVICE", "")[:64])
    except ValueError:
        device_id = None
    device = _DEVICE_WITH_KEY.first(device_id) if device_id else None
    if device is None:
        raise _signature_refusal(ip, "unknown_device", _("This device is not paired with Chave."))
    check_signature(request, body, device.public_key, call, ip=ip, address_checked=True)
    now = clock.now()
    window = dt.timedelta(seconds=policy.get("app_signature_skew_seconds"))
    usable = device.status == DeviceStatus.ACTIVE or (device.status == DeviceStatus.PENDING and pending)
    try:
        with transaction.atomic():  # the nonce and the device's call counted in one write
            _NEW_NONCE.create(device=device, nonce=call.nonce, at=now)
            gate = throttle.hit(("app_api_per_device", str(device.pk))) if usable else throttle.ALLOW
    except IntegrityError:
        raise _signature_refusal(ip, "replayed", _("This call was already made.")) from None
    if device.status == DeviceStatus.REMOVED:
        raise AppRefusal(403, "device_removed", _("This device was removed from your key. Pair it again to use it."))
    if device.status == DeviceStatus.PENDING and not pending:
        raise AppRefusal(403, "device_pending", _("Type the code we sent by SMS to finish adding this device."))
    if not gate.allowed:
        raise _throttled(gate)
    if device.last_seen_at is None or now - device.last_seen_at > dt.timedelta(minutes=1):
        Device.objects.filter(pk=device.pk).update(last_seen_at=now)
        # Nonces older than the time window can never be accepted again: forget them.
        DeviceNonce.objects.filter(device=device, at__lt=now - 2 * window).delete()
    return device


# --- Settings ------------------------------------------------------------------------------------


def set_offline_period(device: Device, period, *, ip: str | None = None) -> Device:
    """The lifetime of the device's offline codes, one of ``app_offline_periods`` seconds."""
    if isinstance(period, bool) or period not in policy.get("app_offline_periods"):
        raise AppRefusal(400, "invalid_offline_period", _("Choose one of the lifetimes offered."))
    if period != device.offline_period:
        with transaction.atomic():
            # Steps of another length are other numbers: what was used stays used (by time).
            last_used = device.offline_last_step * device.offline_period
            Device.objects.filter(pk=device.pk).update(offline_period=period,
                                                       offline_last_step=-(-last_used // period))
            audit.record("app.settings", outcome="ok", citizen=device.key.citizen, channel=CHANNEL, ip=ip,
                         device=str(device.pk), offline_period=period)
        device.refresh_from_db()
    return device


def set_push_subscription(device: Device, value, *, ip: str | None = None) -> Device:
    endpoint, p256dh, auth = parse_push_subscription(value)
    Device.objects.filter(pk=device.pk).update(push_endpoint=endpoint, push_p256dh=p256dh, push_auth=auth)
    device.refresh_from_db()
    return device


def set_language(device: Device, value) -> None:
    if value in dict(settings.LANGUAGES):
        Device.objects.filter(pk=device.pk).update(language=value)


# --- The inbox: codes for the app ------------------------------------------------------------------


def put_in_inbox(device_id: str, body: str) -> Device | None:
    """Keep a code message for the device until it expires (idempotent: the worker may hand the
    same message over again). Returns the device, or None when it is not active (a removed
    device gets nothing)."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    device = Device.objects.filter(pk=device_id, status=DeviceStatus.ACTIVE).first() if _uuid(device_id) else None
    if device is None or data.get("type") != "code":
        return device
    now = clock.now()
    try:
        expires_at = dt.datetime.fromisoformat(data["expires_at"])
    except (KeyError, TypeError, ValueError):
        expires_at = now + policy.code_lifetime("login")
    digest = hashlib.sha256(body.encode()).hexdigest()
    InboxItem.objects.get_or_create(device=device, digest=digest, defaults={
        "payload_sealed": message_sealing.seal(body), "created_at": now, "expires_at": expires_at})
    return device


def _uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


_INBOX = Compiled(lambda device: InboxItem.objects.filter(device_id=device).order_by("-created_at"), uuid.UUID)
_WAITING_APPROVALS = Compiled(
    lambda key, now: SignInRequest.objects.filter(key_id=key, kind=SignInRequest.Kind.APPROVAL,
                                                  status=SignInRequest.Status.PENDING, expires_at__gt=now)
    .order_by("-created_at"), int, dt.datetime)


def inbox(device: Device) -> dict:
    """What the app shows: the codes waiting for this device (newest first, unexpired) and the
    approvals waiting for its key. Expired items are wiped as they are found."""
    now = clock.now()
    found = _INBOX.all(device.pk)
    expired = [item.pk for item in found if item.expires_at <= now]
    if expired:
        InboxItem.objects.filter(pk__in=expired).delete()
    items = []
    for item in found:
        if item.expires_at <= now:
            continue
        try:
            data = json.loads(message_sealing.unseal(item.payload_sealed))
        except (InvalidToken, ValueError):
            continue
        items.append({"id": str(item.pk), **{k: data.get(k) for k in
                                             ("purpose", "portal", "documents", "text", "code", "created_at",
                                              "expires_at")}})
    approvals = [
        {"id": str(r.pk), "portal": r.portal or "Chave", "created_at": r.created_at.isoformat(),
         "expires_at": r.expires_at.isoformat(), "numbers": list(r.choices)}
        for r in _WAITING_APPROVALS.all(device.key_id, now)
    ]
    return {"codes": items, "approvals": approvals}


def dismiss(device: Device, item_id) -> bool:
    """The citizen is done with a code in the app: it leaves the inbox."""
    if not _uuid(item_id):
        return False
    return InboxItem.objects.filter(device=device, pk=item_id).delete()[0] > 0


def prompt_devices(key: Key, payload: dict, devices: list[Device] | None = None) -> int:
    """Wake the key's devices (``devices``, else its active ones: by Web Push, where they gave a
    subscription) for a prompt that waits in Chave (an approval): the message carries no secret.
    Queued with the caller's transaction."""
    count = 0
    for device in (d for d in (active_device_list(key) if devices is None else devices) if d.push_endpoint):
        text = json.dumps(payload, ensure_ascii=False)
        delivery.queue_message(channel="app", destination=str(device.pk), body=text, redacted=text,
                               citizen=key.citizen, kind="prompt",
                               expires_at=dt.datetime.fromisoformat(payload["expires_at"]))
        count += 1
    return count


# --- Approvals: number matching ------------------------------------------------------------------


@dataclass(frozen=True)
class ApprovalStarted:
    ok: bool
    reason: str  # sent | no_device | throttled
    request: SignInRequest | None = None
    retry_at: dt.datetime | None = None


def _three_numbers(number: int) -> list[int]:
    others = set()
    while len(others) < 2:
        candidate = 10 + secrets.randbelow(90)
        if candidate != number:
            others.add(candidate)
    choices = [number, *others]
    secrets.SystemRandom().shuffle(choices)
    return choices


_NEW_REQUEST = Inserter(SignInRequest)
# A login asks again: its earlier approval request stops counting.
_SUPERSEDE = Compiled(
    lambda login, now: SignInRequest.objects.filter(kind=SignInRequest.Kind.APPROVAL, login_transaction=login,
                                                    status=SignInRequest.Status.PENDING),
    str, dt.datetime,
    update=lambda login, now: {"status": SignInRequest.Status.REFUSED, "refusal": "superseded", "answered_at": now})


def request_approval(key: Key, *, login_transaction: str, portal: str, required_level: int = 0,
                     ip: str | None = None, devices: list[Device] | None = None) -> ApprovalStarted:
    """Ask the key's devices to approve this login (number matching). An earlier request of the
    same login stops counting. Each request is a prompt on the citizen's phone, so they are
    limited per key (``app_prompt_per_key``) and per address as codes sent are. ``devices``: the
    key's active devices (:func:`active_device_list`), when the caller has just read them."""
    devices = active_device_list(key) if devices is None else devices
    if not devices:
        return ApprovalStarted(False, "no_device")
    now = clock.now()
    with transaction.atomic():
        gate = throttle.hit(("app_prompt_per_key", str(key.pk)), ("code_send_per_ip", ip or ""))
        if not gate.allowed:
            audit.record("app.approval", outcome="rate_limited", citizen=key.citizen, channel=APP_APPROVE, ip=ip)
            return ApprovalStarted(False, "throttled", retry_at=gate.retry_at)
        _SUPERSEDE.update(str(login_transaction), now)
        number = 10 + secrets.randbelow(90)
        request = _NEW_REQUEST.create(
            kind=SignInRequest.Kind.APPROVAL, key=key, login_transaction=login_transaction, portal=portal or "",
            required_level=required_level, number=number, choices=_three_numbers(number), ip=ip, created_at=now,
            expires_at=now + dt.timedelta(seconds=policy.get("app_approval_seconds")))
        audit.record("app.approval", outcome="ok", citizen=key.citizen, channel=APP_APPROVE, ip=ip, step="asked",
                     portal=portal or None)
        prompt_devices(key, {"type": "approval", "id": str(request.pk), "portal": portal or "Chave",
                             "created_at": now.isoformat(), "expires_at": request.expires_at.isoformat()}, devices)
    return ApprovalStarted(True, "sent", request)


def approval_of(login_transaction: str) -> SignInRequest | None:
    """The newest approval request of a login."""
    return _LATEST_APPROVAL.first(str(login_transaction))


_LATEST_APPROVAL = Compiled(
    lambda login: SignInRequest.objects.select_related("device").filter(kind=SignInRequest.Kind.APPROVAL,
                                                                        login_transaction=login)
    .order_by("-created_at")[:1], str)


_REQUEST_OF_KEY = Compiled(lambda pk, kind, key: SignInRequest.objects.filter(pk=pk, kind=kind, key_id=key)[:1],
                           uuid.UUID, str, int)


def _request_for_device(device: Device, request_id, kind: str) -> SignInRequest:
    if not _uuid(request_id):
        raise AppRefusal(404, "not_found", _("This request does not exist or has ended."))
    found = _REQUEST_OF_KEY.first(uuid.UUID(str(request_id)), str(kind), device.key_id)
    if found is None:
        raise AppRefusal(404, "not_found", _("This request does not exist or has ended."))
    return found


@dataclass(frozen=True)
class Answer:
    result: str  # approved | refused | reported


# The first answer to a pending, unexpired request is the one that counts.
_ANSWER = Compiled(
    lambda pk, now, status, refusal, device: SignInRequest.objects.filter(
        pk=pk, status=SignInRequest.Status.PENDING, expires_at__gt=now),
    uuid.UUID, dt.datetime, str, str, uuid.UUID,
    update=lambda pk, now, status, refusal, device: {"status": status, "refusal": refusal, "device_id": device,
                                                     "answered_at": now})


def answer_approval(device: Device, request_id, *, answer, number=None, ip: str | None = None) -> Answer:
    """The citizen's answer in the app, signed by ``device``: ``answer="number"`` with the number
    tapped, or ``"not_me"``. The right number approves the login (once: concurrent answers find
    it answered); a wrong number refuses it; "not me" refuses it, locks the key for
    ``app_not_me_lock_seconds`` and tells the citizen. Raises :class:`AppRefusal` (404 unknown or
    not this key's, 409 answered or expired, 400 malformed, 429 throttled)."""
    if answer not in ("number", "not_me"):
        raise AppRefusal(400, "invalid_answer", _("Answer with a number, or say it was not you."))
    if answer == "number" and (isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= 99):
        raise AppRefusal(400, "invalid_number", _("Tap one of the numbers shown."))
    # One transaction: the answer counted against the throttles, and then, when it may go on, the
    # request answered and audited. What is refused after the count is raised once the count is
    # committed (an unknown request, or one answered already, is still an attempt).
    with transaction.atomic():
        try:
            result = _answer_approval(device, request_id, answer, number, ip)
        except AppRefusal as refused:
            result = refused
    if isinstance(result, AppRefusal):
        raise result
    return result


def _answer_approval(device: Device, request_id, answer: str, number, ip: str | None) -> Answer:
    """:func:`answer_approval`'s work, in its transaction. An :class:`AppRefusal` is raised only
    before anything is written but the throttles' count, so the caller may commit that count."""
    gate = throttle.hit(("app_approval_per_ip", ip or ""), ("app_approval_per_key", str(device.key_id)))
    if not gate.allowed:
        raise _throttled(gate)
    request = _request_for_device(device, request_id, SignInRequest.Kind.APPROVAL)
    now = clock.now()
    citizen = device.key.citizen
    if answer == "not_me":
        status, refusal, result = SignInRequest.Status.REPORTED, "reported", "reported"
    elif hmac.compare_digest(str(number), str(request.number)):
        status, refusal, result = SignInRequest.Status.APPROVED, "", "approved"
    else:
        status, refusal, result = SignInRequest.Status.REFUSED, "wrong_number", "refused"
    won = _ANSWER.update(request.pk, now, str(status), refusal, device.pk)
    if won != 1:  # nothing written since the count: refusing keeps it
        raise AppRefusal(409, "answered", _("This sign-in was already answered or has expired."))
    audit.record("app.approval", outcome="ok" if result == "approved" else refusal, citizen=citizen,
                 channel=APP_APPROVE, ip=ip,
                 device=str(device.pk), device_name=device.name, portal=request.portal or None)
    if answer == "not_me":
        until = now + dt.timedelta(seconds=policy.get("app_not_me_lock_seconds"))
        identity.lock_key(device.key, until=until, ip=ip, by="app_not_me", channel=CHANNEL,
                          device_name=device.name)
        delivery.notify(citizen, "app_not_me", until=until)
    return Answer(result)


_TAKE = Compiled(lambda pk, now: SignInRequest.objects.filter(pk=pk, status=SignInRequest.Status.APPROVED),
                 uuid.UUID, dt.datetime,
                 update=lambda pk, now: {"status": SignInRequest.Status.COMPLETED, "completed_at": now})


def take_approval(login_transaction: str, request: SignInRequest | None = None) -> SignInRequest | None:
    """The approved request of this login, marked completed: the one caller that gets it signs
    the citizen in (concurrent callers get None). ``request``: :func:`approval_of` of this login,
    when the caller has just read it."""
    if request is None:
        request = approval_of(login_transaction)
    if request is None or request.status != SignInRequest.Status.APPROVED:
        return None
    won = _TAKE.update(request.pk, clock.now())
    return request if won == 1 else None


# --- Offline codes ------------------------------------------------------------------------------


def _offline_hotp(device: Device) -> pyotp.HOTP | None:
    """RFC 6238 is HOTP (RFC 4226) over the time step; pyotp's TOTP stops at 120-second steps, so
    the step is counted here (``int(time) // offline_period``) and HOTP makes the code."""
    try:
        secret = sealing.unseal(device.offline_secret_sealed, secret=settings.CHAVE_KEY_SEAL_SECRET,
                                purpose=SEAL_PURPOSE)
    except (InvalidToken, ValueError):
        return None
    import base64

    raw = signatures.unb64url(secret)
    return pyotp.HOTP(base64.b32encode(raw).decode(), digits=policy.get("code_digits"), digest=hashlib.sha256)


def offline_code(device: Device, at: dt.datetime | None = None) -> str:
    """The device's offline code at ``at`` (the service uses it only to check; tests and the
    development tools read it as the app would show it)."""
    hotp = _offline_hotp(device)
    return hotp.at(int((at or clock.now()).timestamp()) // device.offline_period) if hotp else ""


@dataclass(frozen=True)
class OfflineChecked:
    result: codes.VerifyResult
    device: Device | None = None


def verify_offline_code(key: Key, *, transaction_id: str, submitted, attempts: int, ip: str | None = None
                        ) -> OfflineChecked:
    """Check an offline code typed at a login of ``key`` against each active device: RFC 6238
    with the device's period, ``app_offline_drift_steps`` either way. A step is accepted once per
    device and none older than one accepted (a replay, or an older code, is refused as used), so
    of two concurrent submissions of one code one wins. ``attempts``: wrong entries this login
    has made already (the caller keeps the count); the ``code_max_wrong``-th spends the login's
    chance. Every check counts against ``app_offline_code_per_key``. Audited as ``code.verify``."""
    digits = policy.get("code_digits")
    candidate = str(submitted or "").strip().replace(" ", "")
    if not (candidate.isascii() and candidate.isdigit() and len(candidate) == digits):
        return OfflineChecked(codes.VerifyResult(False, "malformed"))
    max_wrong = policy.get("code_max_wrong")
    if attempts >= max_wrong:
        return OfflineChecked(codes.VerifyResult(False, "spent"))
    gate = throttle.hit(("app_offline_code_per_key", str(key.pk)))
    if not gate.allowed:
        audit.record("code.verify", outcome="rate_limited", citizen=key.citizen, channel=APP_OFFLINE, ip=ip,
                     purpose=Purpose.LOGIN)
        return OfflineChecked(codes.VerifyResult(False, "rate_limited"))
    now = clock.now()
    drift = policy.get("app_offline_drift_steps")
    matched: tuple[Device, int] | None = None
    for device in active_devices(key):
        hotp = _offline_hotp(device)
        if hotp is None:
            continue
        current = int(now.timestamp()) // device.offline_period
        for step in range(current - drift, current + drift + 1):
            if hmac.compare_digest(hotp.at(step), candidate) and matched is None:
                matched = (device, step)
    if matched is None:
        left = max(0, max_wrong - attempts - 1)
        result = codes.VerifyResult(False, "wrong" if left else "spent", attempts_left=left)
        audit.record("code.verify", outcome=result.reason, citizen=key.citizen, channel=APP_OFFLINE, ip=ip,
                     purpose=Purpose.LOGIN)
        return OfflineChecked(result)
    device, step = matched
    won = Device.objects.filter(pk=device.pk, status=DeviceStatus.ACTIVE, offline_last_step__lt=step).update(
        offline_last_step=step)
    result = codes.VerifyResult(True, "ok") if won == 1 else codes.VerifyResult(False, "used")
    audit.record("code.verify", outcome=result.reason, citizen=key.citizen, channel=APP_OFFLINE, ip=ip,
                 purpose=Purpose.LOGIN, device=str(device.pk), device_name=device.name)
    return OfflineChecked(result, device if result.ok else None)


# --- QR sign-in ------------------------------------------------------------------------------------


def _qr_mac(request: SignInRequest, label: str, step: int, size: int) -> bytes:
    key = (settings.SECRET_KEY + "/app/qr").encode()
    return hmac.new(key, f"{label}\x00{request.pk}\x00{step}".encode(), hashlib.sha256).digest()[:size]


def _typed_digits(request: SignInRequest, step: int) -> str:
    value = int.from_bytes(_qr_mac(request, "typed", step, 8), "big") % 10**QR_TYPED_DIGITS
    return str(value).zfill(QR_TYPED_DIGITS)


@dataclass(frozen=True)
class QrCodes:
    link: str  # what the QR code holds now
    typed: str  # the short code under it, as shown ("KQTM-4829")
    next_change: dt.datetime  # when the QR code changes


def qr_codes(request: SignInRequest, at: dt.datetime | None = None) -> QrCodes:
    """What the computer's page shows now: a QR code that changes every ``app_qr_step_seconds``
    (an HMAC of the request's secret and the time step) and the short code under it."""
    now = (at or clock.now()).timestamp()
    period, typed_period = policy.get("app_qr_step_seconds"), policy.get("app_qr_typed_step_seconds")
    step = int(now) // period
    mac = signatures.b64url(_qr_mac(request, "qr", step, 12))
    link = f"{settings.CHAVE_PUBLIC_URL.rstrip('/')}/app/#qr={request.handle}.{step}.{mac}"
    typed = f"{request.handle}-{_typed_digits(request, int(now) // typed_period)}"
    return QrCodes(link, typed, dt.datetime.fromtimestamp((step + 1) * period, tz=dt.timezone.utc))


def start_qr(*, portal: str, required_level: int, ip: str | None) -> tuple[SignInRequest, str]:
    """A QR sign-in for a computer: returns the request and the binder its session keeps (only
    the binder's hash is stored). Raises :class:`AppRefusal` (429) past ``app_qr_per_ip``."""
    gate = throttle.hit(("app_qr_per_ip", ip or ""))
    if not gate.allowed:
        raise _throttled(gate)
    now = clock.now()
    binder = secrets.token_urlsafe(32)
    live = set(SignInRequest.objects.filter(kind=SignInRequest.Kind.QR, expires_at__gt=now)
               .values_list("handle", flat=True))
    while (handle := "".join(secrets.choice(HANDLE_ALPHABET) for _ in range(HANDLE_LENGTH))) in live:
        continue
    request = SignInRequest.objects.create(
        kind=SignInRequest.Kind.QR, handle=handle, binder_hash=hashlib.sha256(binder.encode()).hexdigest(),
        portal=portal or "", required_level=required_level, ip=ip, created_at=now,
        expires_at=now + dt.timedelta(seconds=policy.get("app_qr_seconds")))
    return request, binder


def qr_of_session(request_id, binder) -> SignInRequest | None:
    """The QR sign-in this browser started (its binder matches), else None."""
    if not _uuid(request_id) or not isinstance(binder, str):
        return None
    found = SignInRequest.objects.select_related("device", "key__citizen").filter(
        pk=request_id, kind=SignInRequest.Kind.QR).first()
    if found is None or not hmac.compare_digest(found.binder_hash, hashlib.sha256(binder.encode()).hexdigest()):
        return None
    return found


def _find_scanned(code: str, now: dt.datetime) -> SignInRequest | None:
    """The live QR request ``code`` names, if the code is one its page showed a moment ago."""
    code = (code or "").strip()
    if "#qr=" in code:
        code = code.split("#qr=", 1)[1]
    stamp = now.timestamp()
    if code.count(".") == 2:  # the QR code: handle.step.mac
        handle, step_text, mac = code.split(".")
        if not step_text.isascii() or not step_text.isdigit() or len(step_text) > 12:
            return None
        step, period = int(step_text), policy.get("app_qr_step_seconds")
        current = int(stamp) // period
        # The code shown now, or the one before it if it changed less than the grace ago.
        fresh = step == current or (step == current - 1 and stamp - current * period <= policy.get("app_qr_grace_seconds"))
        candidates = SignInRequest.objects.filter(kind=SignInRequest.Kind.QR, handle=handle.upper(),
                                                  expires_at__gt=now) if fresh else []
        for request in candidates:
            if hmac.compare_digest(signatures.b64url(_qr_mac(request, "qr", step, 12)), mac):
                return request
        return None
    typed = "".join(code.split()).replace("-", "").upper()
    handle, digits = typed[:HANDLE_LENGTH], typed[HANDLE_LENGTH:]
    if len(digits) != QR_TYPED_DIGITS or not digits.isascii() or not digits.isdigit():
        return None
    period = policy.get("app_qr_typed_step_seconds")
    current = int(stamp) // period
    for request in SignInRequest.objects.filter(kind=SignInRequest.Kind.QR, handle=handle, expires_at__gt=now):
        if any(hmac.compare_digest(_typed_digits(request, s), digits) for s in (current, current - 1)):
            return request
    return None


def scan_qr(device: Device, code, *, ip: str | None = None) -> SignInRequest:
    """The app read a QR code (or the citizen typed its short code): claim that sign-in for this
    device, which then asks for the PIN. Raises :class:`AppRefusal`: 400 malformed, 410 a code no
    longer shown (it changed: a relayed picture goes stale), 409 claimed by another device,
    403 a portal asking for more than the app reaches or a key that cannot sign in, 429."""
    if not isinstance(code, str) or len(code) > 300:
        raise AppRefusal(400, "invalid_qr", _("This is not a Chave sign-in code."))
    gate = throttle.hit(("app_qr_scan_per_device", str(device.pk)))
    if not gate.allowed:
        raise _throttled(gate)
    now = clock.now()
    request = _find_scanned(code, now)
    citizen = device.key.citizen
    if request is None:
        audit.record("app.qr", outcome="stale_or_unknown", citizen=citizen, channel=APP_QR, ip=ip,
                     device=str(device.pk))
        raise AppRefusal(410, "qr_expired", _("This code has changed or expired. Scan the code on the screen now."))
    if request.required_level > policy.assurance_level("app"):
        raise AppRefusal(403, "level", _("%(portal)s asks for the Citizen Card.") % {"portal": request.portal})
    if not _key_usable(device.key, now):
        raise AppRefusal(403, "key_unusable", _("Your key cannot be used now."))
    won = SignInRequest.objects.filter(pk=request.pk, status=SignInRequest.Status.PENDING, expires_at__gt=now).update(
        status=SignInRequest.Status.SCANNED, device=device, key=device.key, scanned_at=now)
    if won != 1:
        raise AppRefusal(409, "answered", _("This sign-in was already answered or has expired."))
    audit.record("app.qr", outcome="ok", citizen=citizen, channel=APP_QR, ip=ip, step="scanned", device=str(device.pk),
                 device_name=device.name, portal=request.portal or None)
    request.refresh_from_db()
    return request


def approve_qr(device: Device, request_id, pin, *, ip: str | None = None) -> identity.PinDecision:
    """The PIN typed in the app for a QR sign-in this device scanned: checked with the login PIN
    rules (throttle per address, locks, blocks). Right → the sign-in is approved; the computer's
    page completes it. Raises :class:`AppRefusal` (404, 409 not waiting for a PIN or too late, 400
    malformed PIN); a wrong PIN comes back as the :class:`PinDecision` (and refuses the request
    once the key locks)."""
    request = _request_for_device(device, request_id, SignInRequest.Kind.QR)
    now = clock.now()
    if request.status != SignInRequest.Status.SCANNED or request.device_id != device.pk or \
            request.expires_at <= now or request.scanned_at + dt.timedelta(seconds=policy.get("app_qr_pin_seconds")) <= now:
        raise AppRefusal(409, "answered", _("This sign-in was already answered or has expired."))
    low, high = policy.get("pin_min_length"), policy.get("pin_max_length")
    if not (isinstance(pin, str) and pin.isascii() and pin.isdigit() and low <= len(pin) <= high):
        raise AppRefusal(400, "invalid_pin", _("The PIN must have %(low)d to %(high)d digits, digits only.")
                         % {"low": low, "high": high})
    decision = identity.check_login_pin(device.key, pin, ip=ip, channel=APP_QR)
    if decision.ok and decision.must_change_pin:
        decision = identity.PinDecision(False, "temporary_pin", key=decision.key)
    if decision.ok:
        won = SignInRequest.objects.filter(pk=request.pk, status=SignInRequest.Status.SCANNED).update(
            status=SignInRequest.Status.APPROVED, answered_at=clock.now())
        if won != 1:
            raise AppRefusal(409, "answered", _("This sign-in was already answered or has expired."))
    elif decision.reason in ("locked", "blocked", "temporary_pin", "temporary_pin_expired", "cancelled", "expired"):
        SignInRequest.objects.filter(pk=request.pk, status=SignInRequest.Status.SCANNED).update(
            status=SignInRequest.Status.REFUSED, refusal="key_unusable", answered_at=clock.now())
    audit.record("app.qr", outcome="ok" if decision.ok else "wrong_pin", citizen=device.key.citizen,
                 channel=APP_QR, ip=ip, device=str(device.pk), device_name=device.name)
    return decision


def decline_qr(device: Device, request_id, *, ip: str | None = None) -> None:
    """The citizen said no in the app to a sign-in they scanned."""
    request = _request_for_device(device, request_id, SignInRequest.Kind.QR)
    SignInRequest.objects.filter(pk=request.pk, device=device, status=SignInRequest.Status.SCANNED).update(
        status=SignInRequest.Status.REFUSED, refusal="declined", answered_at=clock.now())
    audit.record("app.qr", outcome="declined", citizen=device.key.citizen, channel=APP_QR, ip=ip,
                 device=str(device.pk))


def take_qr(request: SignInRequest) -> SignInRequest | None:
    """The approved QR sign-in, marked completed for the one caller that gets it."""
    won = SignInRequest.objects.filter(pk=request.pk, status=SignInRequest.Status.APPROVED).update(
        status=SignInRequest.Status.COMPLETED, completed_at=clock.now())
    if won != 1:
        return None
    request.refresh_from_db()
    return request


def housekeeping() -> dict:
    """Forget what can no longer be used: expired inbox items, old nonces, pending devices whose
    code has long expired (removed as not confirmed), requests older than a day. Idempotent."""
    now = clock.now()
    window = dt.timedelta(seconds=policy.get("app_signature_skew_seconds"))
    inbox_items = InboxItem.objects.filter(expires_at__lte=now).delete()[0]
    nonces = DeviceNonce.objects.filter(at__lt=now - 2 * window).delete()[0]
    stale = now - policy.code_lifetime("device") - dt.timedelta(days=1)
    pending = 0
    for device in Device.objects.filter(status=DeviceStatus.PENDING, created_at__lt=stale):
        pending += _remove(device, by="not_confirmed", now=now)
    requests = SignInRequest.objects.filter(expires_at__lt=now - dt.timedelta(days=1)).delete()[0]
    # Keys that expired (or were revoked for disuse) take their devices with them.
    gone = 0
    for device in Device.objects.exclude(status=DeviceStatus.REMOVED).exclude(
            key__status__in=[KeyStatus.ACTIVE, KeyStatus.LOCKED, KeyStatus.PENDING]).select_related("key__citizen"):
        gone += remove_device(device, by=f"key_{device.key.status}", channel="housekeeping", notify=False)
    return {"inbox": inbox_items, "nonces": nonces, "pending_devices": pending, "requests": requests,
            "devices_of_ended_keys": gone}

