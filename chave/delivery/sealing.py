"""Encryption at rest of queued message bodies (they carry codes until sent).

Sealed with ``chave.sealing`` under ``CHAVE_MESSAGE_KEY``; a body is sealed when queued and wiped
once sent or given up.
"""

from __future__ import annotations

from django.conf import settings

from chave import sealing

_PURPOSE = "outbound-message"


def seal(text: str) -> str:
    return sealing.seal(text, secret=settings.CHAVE_MESSAGE_KEY, purpose=_PURPOSE)


def unseal(token: str) -> str:
    return sealing.unseal(token, secret=settings.CHAVE_MESSAGE_KEY, purpose=_PURPOSE)
