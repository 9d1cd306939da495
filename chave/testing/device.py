"""A device of the Chave app written in Python, driving the app API the way a native app would
(``chave/app/API.md``): its own ECDSA P-256 key, every call signed, the offline codes made from
the secret it got at pairing (RFC 6238, HMAC-SHA-256), its clock corrected by ``Chave-Time``.

It speaks through a transport: :class:`DjangoTransport` (Django's test client, in process) or
:class:`HttpTransport` (real HTTP, to a live server). Nothing here imports Chave's services: what
it knows of Chave is the API document.

    device = Device(DjangoTransport(client))
    device.pair("K7QXR2M9", name="Telemóvel da Ana")
    device.confirm(code_from_sms)
    device.inbox()["codes"][0]["code"]
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import struct
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Answer:
    status: int
    data: dict | None
    headers: dict = field(default_factory=dict)

    def __getitem__(self, name):
        return (self.data or {})[name]


class ApiRefused(AssertionError):
    def __init__(self, answer: Answer):
        super().__init__(f"{answer.status}: {answer.data}")
        self.answer = answer
        self.status = answer.status
        self.error = (answer.data or {}).get("error")


class DjangoTransport:
    """Calls through Django's test client (``client.generic``)."""

    def __init__(self, client, **extra):
        self.client, self.extra = client, extra

    def send(self, method: str, path: str, body: bytes, headers: dict) -> Answer:
        meta = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}
        response = self.client.generic(method, path, body, "application/json", **self.extra, **meta)
        data = json.loads(response.content) if response.content and response["Content-Type"].startswith(
            "application/json") else None
        return Answer(response.status_code, data, {k.lower(): v for k, v in response.items()})


class HttpTransport:
    """Calls over HTTP to ``base_url`` (urllib)."""

    def __init__(self, base_url: str, accept_language: str = "en"):
        self.base_url, self.accept_language = base_url.rstrip("/"), accept_language

    def send(self, method: str, path: str, body: bytes, headers: dict) -> Answer:
        request = urllib.request.Request(self.base_url + path, data=body if method != "GET" else None,
                                         method=method, headers={"Content-Type": "application/json",
                                                                 "Accept-Language": self.accept_language, **headers})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw, got = response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            status, raw, got = exc.code, exc.read(), dict(exc.headers)
        data = json.loads(raw) if raw else None
        return Answer(status, data, {k.lower(): v for k, v in got.items()})


class Device:
    """One installed app: a key pair, and what Chave told it at pairing."""

    SCHEME = "chave-app-v1"

    def __init__(self, transport, *, private_key: ec.EllipticCurvePrivateKey | None = None, language: str = "en"):
        self.transport = transport
        self.private_key = private_key or ec.generate_private_key(ec.SECP256R1())
        self.language = language
        self.device_id: str | None = None
        self.offline_secret: bytes | None = None
        self.offline_period = 30
        self.clock_offset = 0.0  # Chave's clock minus ours, learnt from Chave-Time
        self.last: Answer | None = None

    # --- the key and signatures --------------------------------------------------------------

    @property
    def public_jwk(self) -> dict:
        numbers = self.private_key.public_key().public_numbers()
        return {"kty": "EC", "crv": "P-256", "x": b64url(numbers.x.to_bytes(32, "big")),
                "y": b64url(numbers.y.to_bytes(32, "big"))}

    def now(self) -> float:
        return time.time() + self.clock_offset

    def sign(self, message: bytes) -> str:
        r, s = decode_dss_signature(self.private_key.sign(message, ec.ECDSA(hashes.SHA256())))
        return b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def headers(self, method: str, path: str, body: bytes, *, device: str | None = None,
                timestamp: int | None = None, nonce: str | None = None) -> dict:
        device = device or self.device_id or "-"
        timestamp = str(int(self.now()) if timestamp is None else timestamp)
        nonce = nonce or secrets.token_urlsafe(18)
        split = urlsplit(path)
        text = "\n".join([self.SCHEME, method.upper(), split.path, split.query, device, timestamp, nonce,
                          b64url(hashlib.sha256(body).digest())]).encode()
        return {"Chave-Device": device, "Chave-Timestamp": timestamp, "Chave-Nonce": nonce,
                "Chave-Signature": self.sign(text)}

    def call(self, method: str, path: str, payload=None, *, signed: bool = True, check: bool = True,
             raw: bytes | None = None, headers: dict | None = None, retry_clock: bool = True) -> Answer:
        body = raw if raw is not None else (json.dumps(payload).encode() if payload is not None else b"")
        sent = self.headers(method, path, body) if signed else {}
        sent.update({"Accept-Language": self.language, **(headers or {})})
        answer = self.transport.send(method, path, body, sent)
        self.last = answer
        if "chave-time" in answer.headers:
            self.clock_offset = int(answer.headers["chave-time"]) / 1000 - time.time()
        if answer.status == 401 and (answer.data or {}).get("error") == "clock_skew" and signed and retry_clock:
            # Our clock was off: Chave-Time corrected it; sign again, once (as the app does).
            return self.call(method, path, payload, signed=signed, check=check, raw=raw, headers=headers,
                             retry_clock=False)
        if check and answer.status >= 400:
            raise ApiRefused(answer)
        return answer

    # --- the API -------------------------------------------------------------------------------

    def config(self) -> dict:
        return self.call("GET", "/app/api/config", signed=False).data

    def pair(self, pairing_code: str, *, name: str = "Telemóvel", push_subscription: dict | None = None) -> Answer:
        answer = self.call("POST", "/app/api/pairings", {
            "pairing_code": pairing_code, "public_key": self.public_jwk, "name": name,
            "push_subscription": push_subscription, "language": "pt-pt" if self.language.startswith("pt") else "en"})
        self.device_id = answer["id"]
        return answer

    def confirm(self, code: str) -> Answer:
        answer = self.call("POST", "/app/api/device/confirm", {"code": code})
        offline = answer["offline"]
        self.offline_secret, self.offline_period = unb64url(offline["secret"]), offline["period"]
        return answer

    def info(self) -> dict:
        return self.call("GET", "/app/api/device").data

    def settings(self, **changes) -> dict:
        answer = self.call("POST", "/app/api/device/settings", changes)
        self.offline_period = answer["offline_period"]
        return answer.data

    def inbox(self) -> dict:
        return self.call("GET", "/app/api/inbox").data

    def approve(self, request_id: str, number: int) -> Answer:
        return self.call("POST", f"/app/api/approvals/{request_id}", {"answer": "number", "number": number})

    def not_me(self, request_id: str) -> Answer:
        return self.call("POST", f"/app/api/approvals/{request_id}", {"answer": "not_me"})

    def scan(self, code: str) -> Answer:
        return self.call("POST", "/app/api/qr", {"code": code})

    def qr_pin(self, request_id: str, pin: str) -> Answer:
        return self.call("POST", f"/app/api/qr/{request_id}", {"pin": pin})

    def unpair(self) -> Answer:
        return self.call("POST", "/app/api/device/remove", {})

    # --- offline codes (no network) ------------------------------------------------------------

    def offline_code(self, at: float | None = None) -> str:
        """RFC 6238 with HMAC-SHA-256, the period Chave keeps for this device, 6 digits."""
        assert self.offline_secret, "not paired"
        step = int((self.now() if at is None else at) // self.offline_period)
        digest = hmac.new(self.offline_secret, struct.pack(">Q", step), hashlib.sha256).digest()
        offset = digest[-1] & 0x0F
        value = (int.from_bytes(digest[offset:offset + 4], "big") & 0x7FFFFFFF) % 10**6
        return str(value).zfill(6)
