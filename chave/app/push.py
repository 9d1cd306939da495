"""The Chave app's delivery provider: the device's inbox, and Web Push.

:class:`AppDelivery` is the provider of channel ``app`` (``CHAVE_APP_PUSH_PROVIDER=webpush``),
called by the delivery worker like any other (``submit_message(to, body, subject)``; ``to`` is a
device id, ``body`` the JSON of :func:`chave.delivery.messages.app_code_message` or of a prompt).
It keeps a code in the device's inbox (the app asks for it while open) and, when the device gave
a Web Push subscription, pushes the message to it: RFC 8030 (a POST to the push resource),
RFC 8291 (``aes128gcm``, encrypted to the subscription's keys, so the push service cannot read
the code) and RFC 8292 (VAPID, signed with ``CHAVE_APP_VAPID_PRIVATE_KEY``), by ``pywebpush``.

A push service that is down (or answers 429/5xx) is a temporary failure: the worker tries again
(the inbox keeps the code meanwhile, written once); a subscription the push service no longer
knows (404/410) is forgotten; a push service not in ``CHAVE_APP_PUSH_SERVICES`` is never called.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings

from chave import clock
from chave.once import locked_cache
from chave.delivery.providers import PermanentFailure, TemporaryFailure

from . import signatures

log = logging.getLogger(__name__)


@locked_cache(maxsize=4)  # one key per process, however many threads push first
def _vapid_key(configured: str, data_dir: str) -> ec.EllipticCurvePrivateKey:
    if configured:
        text = Path(configured).read_bytes() if not configured.lstrip().startswith("-----") else configured.encode()
        key = serialization.load_pem_private_key(text, password=None)
    else:  # development and tests: one key made once under the data directory
        path = Path(data_dir) / "app" / "vapid.pem"
        if not path.exists():
            _make_dev_vapid_key(path)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("CHAVE_APP_VAPID_PRIVATE_KEY must be an EC P-256 private key")
    return key


def _make_dev_vapid_key(path: Path) -> None:
    """Write a new key to ``path`` unless another process got there first: written whole under
    another name, then linked to ``path``, which fails if it exists (every process then reads the
    one that won, so the subscriptions made through any of them stay good)."""
    key = ec.generate_private_key(ec.SECP256R1())
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}")
    draft.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    draft.chmod(0o600)
    try:
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink()


def vapid_private_key() -> ec.EllipticCurvePrivateKey:
    return _vapid_key(settings.CHAVE_APP_VAPID_PRIVATE_KEY, str(settings.DATA_DIR))


def vapid_public_key() -> str:
    """The application server key the app subscribes with (uncompressed point, base64url)."""
    point = vapid_private_key().public_key().public_bytes(serialization.Encoding.X962,
                                                          serialization.PublicFormat.UncompressedPoint)
    return signatures.b64url(point)


def push(device, payload: str, *, ttl: int) -> str:
    """Post ``payload`` to the device's push subscription; returns what the push service said.
    Raises :class:`TemporaryFailure` / :class:`PermanentFailure` as a provider does."""
    from py_vapid import Vapid02
    from pywebpush import WebPushException, webpush

    from .services import push_service_allowed

    if not push_service_allowed(device.push_endpoint):
        raise PermanentFailure("push service not allowed")
    vapid = Vapid02(private_key=vapid_private_key())
    try:
        response = webpush(
            subscription_info={"endpoint": device.push_endpoint,
                               "keys": {"p256dh": device.push_p256dh, "auth": device.push_auth}},
            data=payload, vapid_private_key=vapid, vapid_claims={"sub": settings.CHAVE_APP_VAPID_SUBJECT},
            content_encoding="aes128gcm", ttl=max(0, ttl), timeout=settings.CHAVE_HTTP_TIMEOUT,
            headers={"Urgency": "high"},
        )
    except WebPushException as exc:
        status = getattr(exc.response, "status_code", None)
        if status is None or status == 429 or status >= 500:
            raise TemporaryFailure(f"push service unreachable or busy ({status})") from None
        raise PermanentFailure(f"push service refused with {status}") from None
    except Exception as exc:  # requests' own errors: connection refused, timeout
        raise TemporaryFailure(f"push service unreachable ({exc.__class__.__name__})") from None
    return response.headers.get("Location", "") if hasattr(response, "headers") else ""


class AppDelivery:
    name = "webpush"

    def __init__(self, channel: str):
        self.channel = channel

    def submit_message(self, to: str, body: str, subject: str = "") -> str:
        from .models import Device
        from .services import put_in_inbox

        device = put_in_inbox(to, body)
        if device is None or not device.is_active:
            raise PermanentFailure("the device is not paired")
        if not device.push_endpoint:
            return "inbox"
        try:
            expires = dt.datetime.fromisoformat(json.loads(body).get("expires_at") or "")
            ttl = int((expires - clock.now()).total_seconds())
        except (TypeError, ValueError):
            ttl = 60
        if ttl <= 0:
            return "inbox"
        try:
            location = push(device, body, ttl=ttl)
        except PermanentFailure as exc:
            if "404" in str(exc) or "410" in str(exc):
                # The push service forgot the subscription: stop using it; the app still asks.
                Device.objects.filter(pk=device.pk, push_endpoint=device.push_endpoint).update(
                    push_endpoint="", push_p256dh="", push_auth="")
            log.warning("web push to device %s: %s", device.pk, exc)
            return "inbox"
        return f"inbox+push {location}"[:128]
