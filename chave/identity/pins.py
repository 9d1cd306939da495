"""PIN storage: Argon2id over an HMAC-SHA256 of the PIN keyed with the server's pepper.

The PIN space is tiny (4-8 digits), so Argon2 alone would fall to a brute force of a stolen
database; the pepper, which lives outside the database, is what protects it. Parameters come
from ``settings.CHAVE_ARGON2``; a stored hash made with other parameters is re-hashed at the
next correct use (:func:`verify` says so).
"""

from __future__ import annotations

import functools
import hashlib
import hmac

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from django.conf import settings


@functools.lru_cache(maxsize=4)
def _hasher(time_cost: int, memory_cost: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism, type=Type.ID)


def hasher() -> PasswordHasher:
    p = settings.CHAVE_ARGON2
    return _hasher(p["time_cost"], p["memory_cost"], p["parallelism"])


def _peppered(pin: str) -> bytes:
    return hmac.new(settings.CHAVE_PIN_PEPPER.encode(), b"chave-pin\x00" + pin.encode(), hashlib.sha256).digest()


def hash_pin(pin: str) -> str:
    return hasher().hash(_peppered(pin))


@functools.lru_cache(maxsize=4)
def _dummy_hash(time_cost: int, memory_cost: int, parallelism: int) -> str:
    return _hasher(time_cost, memory_cost, parallelism).hash(b"chave-dummy-pin")


def verify(stored_hash: str | None, pin: str) -> tuple[bool, bool]:
    """Return ``(correct, needs_rehash)``. Takes the same time whether or not a hash exists.

    With no stored hash (unknown citizen, no PIN yet) a dummy hash is verified so that the
    answer costs what a real one costs: no user enumeration through timing.
    """
    h = hasher()
    if not stored_hash:
        p = settings.CHAVE_ARGON2
        try:
            h.verify(_dummy_hash(p["time_cost"], p["memory_cost"], p["parallelism"]), _peppered(str(pin)))
        except (VerificationError, InvalidHashError):
            pass
        return False, False
    try:
        h.verify(stored_hash, _peppered(str(pin)))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, False
    return True, h.check_needs_rehash(stored_hash)
