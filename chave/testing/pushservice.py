"""A local Web Push service for tests and development, as Kannel's fakesmsc stands in for an SMSC.

It does what a browser's push service and the browser together do for a subscription:

- :meth:`PushService.subscribe` makes a subscription as ``PushManager.subscribe`` would (a P-256
  ECDH key pair and a 16-byte authentication secret, kept here as the browser keeps them) and
  returns its ``toJSON()``: ``{"endpoint", "keys": {"p256dh", "auth"}}``;
- the push resource (RFC 8030 §5): ``POST /push/<id>`` with a ``TTL`` header; it checks the
  application server's VAPID ``Authorization: vapid t=<JWT>, k=<key>`` (RFC 8292: ES256, ``aud``
  this service's origin, ``exp`` within 24 hours, a ``sub`` contact) against the key the
  subscription was made for, decrypts the ``aes128gcm`` body with the subscription's keys
  (RFC 8291, RFC 8188, by ``http_ece``) and keeps the clear message; ``201 Created`` with a
  ``Location``; ``404`` for an unknown subscription, ``410`` for one the test expired;
- :meth:`PushService.messages` is what the browser would hand the service worker.

``fail_next(n, status)`` makes the next pushes fail (a push service that is down or busy).
Start it with ``with PushService() as service:``; it listens on 127.0.0.1 on a free port.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .device import b64url as _b64url
from .device import unb64url as _unb64url


@dataclass
class Received:
    payload: bytes
    ttl: int
    urgency: str
    vapid_claims: dict
    vapid_key: str
    at: float = field(default_factory=time.time)

    @property
    def json(self) -> dict:
        return json.loads(self.payload)


@dataclass
class _Subscription:
    id: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    application_server_key: str | None
    messages: list = field(default_factory=list)
    expired: bool = False


class PushService:
    def __init__(self):
        self._subscriptions: dict[str, _Subscription] = {}
        self._lock = threading.Lock()
        self._failures: list[int] = []
        self.refused: list[tuple[int, str]] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802 - http.server's name
                status, headers, reason = service._push(self)
                if status >= 400:
                    service.refused.append((status, reason))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> PushService:
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    # --- what the browser does ----------------------------------------------------------------

    def subscribe(self, application_server_key: str | None = None) -> dict:
        """A new subscription for an application server key (None: any), as its ``toJSON()``."""
        sub = _Subscription(secrets.token_urlsafe(16), ec.generate_private_key(ec.SECP256R1()),
                            secrets.token_bytes(16), application_server_key)
        with self._lock:
            self._subscriptions[sub.id] = sub
        point = sub.private_key.public_key().public_bytes(serialization.Encoding.X962,
                                                          serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": f"{self.origin}/push/{sub.id}", "expirationTime": None,
                "keys": {"p256dh": _b64url(point), "auth": _b64url(sub.auth)}}

    def messages(self, subscription: dict) -> list[Received]:
        with self._lock:
            return list(self._subscriptions[subscription["endpoint"].rsplit("/", 1)[1]].messages)

    def expire(self, subscription: dict) -> None:
        """The browser dropped the subscription: pushes to it get 410 Gone."""
        with self._lock:
            self._subscriptions[subscription["endpoint"].rsplit("/", 1)[1]].expired = True

    def fail_next(self, count: int, status: int = 503) -> None:
        with self._lock:
            self._failures.extend([status] * count)

    # --- the push resource ----------------------------------------------------------------------

    def _push(self, request) -> tuple[int, dict, str]:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        with self._lock:
            if self._failures:
                return self._failures.pop(0), {"Retry-After": "1"}, "told to fail"
            sub = self._subscriptions.get(request.path.rsplit("/", 1)[-1]) if request.path.startswith("/push/") else None
        if sub is None:
            return 404, {}, "no such subscription"
        if sub.expired:
            return 410, {}, "subscription expired"
        ttl = request.headers.get("TTL")
        if ttl is None or not ttl.isdigit():
            return 400, {}, "TTL header missing"
        if request.headers.get("Content-Encoding") != "aes128gcm":
            return 415, {}, "only aes128gcm"
        try:
            claims, key = self._vapid(request.headers.get("Authorization", ""))
        except ValueError as exc:
            return 401, {}, f"VAPID: {exc}"
        if sub.application_server_key and key != sub.application_server_key:
            return 403, {}, "VAPID key is not the subscription's application server key"
        try:
            payload = http_ece.decrypt(body, private_key=sub.private_key, auth_secret=sub.auth, version="aes128gcm")
        except Exception as exc:  # noqa: BLE001 - a bad body is the sender's error
            return 400, {}, f"cannot decrypt: {exc.__class__.__name__}"
        message_id = secrets.token_urlsafe(8)
        with self._lock:
            sub.messages.append(Received(payload, int(ttl), request.headers.get("Urgency", "normal"), claims, key))
        return 201, {"Location": f"{self.origin}/message/{message_id}"}, ""

    def _vapid(self, header: str) -> tuple[dict, str]:
        from joserfc import jwt
        from joserfc.jwk import ECKey

        scheme, _, params = header.partition(" ")
        if scheme.lower() != "vapid":
            raise ValueError("no vapid Authorization")
        fields = dict(part.strip().split("=", 1) for part in params.split(",") if "=" in part)
        token, key = fields.get("t", ""), fields.get("k", "")
        point = _unb64url(key)
        if len(point) != 65 or point[0] != 4:
            raise ValueError("k is not an uncompressed P-256 point")
        jwk = ECKey.import_key({"kty": "EC", "crv": "P-256", "x": _b64url(point[1:33]), "y": _b64url(point[33:])})
        decoded = jwt.decode(token, jwk, algorithms=["ES256"])
        claims = decoded.claims
        if claims.get("aud") != self.origin:
            raise ValueError("aud is not this push service")
        if not isinstance(claims.get("exp"), int) or not time.time() < claims["exp"] <= time.time() + 24 * 3600:
            raise ValueError("exp missing, past or beyond 24 hours")
        if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
            raise ValueError("sub is not a contact")
        return claims, key
