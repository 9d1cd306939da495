"""Encryption at rest for secrets the service must read back (queued message bodies, signing keys).

Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) with a key derived from a configured
secret and a purpose label, so that one secret never serves two purposes.
"""

from __future__ import annotations

import base64
import functools
import hashlib

from cryptography.fernet import Fernet


@functools.lru_cache(maxsize=16)
def _fernet(secret: str, purpose: str) -> Fernet:
    digest = hashlib.sha256(f"chave-seal\x00{purpose}\x00".encode() + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal(text: str, *, secret: str, purpose: str) -> str:
    return _fernet(secret, purpose).encrypt(text.encode()).decode()


def unseal(token: str, *, secret: str, purpose: str) -> str:
    """Raises ``cryptography.fernet.InvalidToken`` when the secret or purpose differ."""
    return _fernet(secret, purpose).decrypt(token.encode()).decode()
