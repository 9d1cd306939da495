"""Encryption at rest of queued message bodies (they carry codes until sent).

Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) with a key derived from
``CHAVE_MESSAGE_KEY``. A body is sealed when queued and wiped once sent or given up.
"""

from __future__ import annotations

import base64
import functools
import hashlib

from cryptography.fernet import Fernet
from django.conf import settings


@functools.lru_cache(maxsize=4)
def _fernet(secret: str) -> Fernet:
    digest = hashlib.sha256(b"chave-message-seal\x00" + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal(text: str) -> str:
    return _fernet(settings.CHAVE_MESSAGE_KEY).encrypt(text.encode()).decode()


def unseal(token: str) -> str:
    return _fernet(settings.CHAVE_MESSAGE_KEY).decrypt(token.encode()).decode()
