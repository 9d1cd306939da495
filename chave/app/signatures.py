"""How a device signs its calls, and how Chave checks them (``chave/app/API.md``).

The device holds an ECDSA P-256 key made by WebCrypto (non-extractable) or by a native app's
keystore; its public half is registered at pairing as a JWK. Each call carries four headers:

- ``Chave-Device``: the device id (``-`` while pairing, when the key is new);
- ``Chave-Timestamp``: the device's clock in whole seconds since 1970 (it corrects its clock
  by the ``Chave-Time`` header of earlier answers);
- ``Chave-Nonce``: 16 to 64 characters of ``[A-Za-z0-9_-]``, never used twice by the device;
- ``Chave-Signature``: ECDSA P-256 with SHA-256 over :func:`signed_text`, as WebCrypto makes it
  (``r || s``, 64 bytes), base64url without padding.

The signed text binds the method, the path and query, the device, the time, the nonce and the
SHA-256 of the body, so a signature covers exactly one call; the server refuses a time more than
``app_signature_skew_seconds`` away and a nonce seen before.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

SCHEME = "chave-app-v1"
NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


class BadKey(ValueError):
    """The public key is not a P-256 JWK."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    """Raises ``ValueError`` for anything that is not base64url."""
    if not isinstance(text, str) or not B64URL.match(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signed_text(*, method: str, path: str, query: str, device: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return "\n".join([SCHEME, method.upper(), path, query, device, timestamp, nonce,
                      b64url(hashlib.sha256(body).digest())]).encode()


def public_key(jwk) -> ec.EllipticCurvePublicKey:
    """The P-256 public key of ``jwk`` ({kty: EC, crv: P-256, x, y}); raises :class:`BadKey`."""
    if not isinstance(jwk, dict) or jwk.get("kty") != "EC" or jwk.get("crv") != "P-256" or "d" in jwk:
        raise BadKey("an EC P-256 public JWK is expected")
    x, y = jwk.get("x"), jwk.get("y")
    if not isinstance(x, str) or not isinstance(y, str):
        raise BadKey("not base64url")
    return _point(x, y)


@functools.lru_cache(maxsize=1024)  # a paired device's key is checked at each of its calls
def _point(x: str, y: str) -> ec.EllipticCurvePublicKey:
    try:
        raw_x, raw_y = unb64url(x), unb64url(y)
        if len(raw_x) != 32 or len(raw_y) != 32:
            raise ValueError("coordinates of 32 bytes")
        return ec.EllipticCurvePublicNumbers(int.from_bytes(raw_x, "big"), int.from_bytes(raw_y, "big"),
                                             ec.SECP256R1()).public_key()
    except ValueError as exc:  # also a point that is not on the curve
        raise BadKey(str(exc)) from None


def canonical_jwk(jwk: dict) -> dict:
    return {"kty": "EC", "crv": "P-256", "x": jwk["x"], "y": jwk["y"]}


def thumbprint(jwk: dict) -> str:
    """RFC 7638 SHA-256 thumbprint, base64url."""
    members = json.dumps(canonical_jwk(jwk), separators=(",", ":"), sort_keys=True).encode()
    return b64url(hashlib.sha256(members).digest())


def verify(key: ec.EllipticCurvePublicKey, signature: str, message: bytes) -> bool:
    """Whether ``signature`` (base64url ``r || s``) is ``key``'s over ``message``."""
    try:
        raw = unb64url(signature)
    except ValueError:
        return False
    if len(raw) != 64:
        return False
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        key.verify(der, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True
