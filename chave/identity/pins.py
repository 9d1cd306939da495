"""PIN storage: Argon2id over an HMAC-SHA-256 of the PIN computed inside the HSM.

The PIN space is tiny (4-8 digits: at most 10^8 values), so no Argon2 cost protects a stolen
database: a few GPU-hours try every PIN. What protects it is the **pepper**, an HMAC-SHA-256 key
generated in an HSM through PKCS#11 (``CHAVE_PIN_PEPPER_KEY_LABEL``; sensitive, never
extractable): whoever copies the database, the settings and the code still cannot test a single
PIN without asking the HSM. Argon2id on top (``settings.CHAVE_ARGON2``, OWASP's minimum by
default) keeps a stolen database costly to search even for someone who can also use the HSM.

Stored hashes of this scheme start with :data:`HSM_SCHEME`. Hashes from before it (Argon2id over
an HMAC keyed with the ``CHAVE_PIN_PEPPER`` setting) still verify, and :func:`verify` asks for a
re-hash at the next correct use, as it does for a hash made with other Argon2 parameters.

At most ``CHAVE_ARGON2_CONCURRENCY`` Argon2 computations run at once in a process (default: its
cores); further ones wait their turn, so a burst of logins costs time, not memory. And a finished
one's memory is the next one's, whichever thread runs it (:func:`share_argon2_memory`).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import hashlib
import hmac
import os
import threading
from pathlib import Path

import pkcs11
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from django.conf import settings

from chave.once import locked_cache
from chave.signing.hsm import MODULE_LOCK

HSM_SCHEME = "hsm1$"  # prefix of hashes peppered by the HSM's key
_DOMAIN = b"chave-pin\x00"


class PepperUnavailable(Exception):
    """The HSM does not hold the PIN pepper key (run ``chave pin-pepper init``) or cannot be reached."""


@functools.lru_cache(maxsize=4)
def _hasher(time_cost: int, memory_cost: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism, type=Type.ID)


def hasher() -> PasswordHasher:
    p = settings.CHAVE_ARGON2
    return _hasher(p["time_cost"], p["memory_cost"], p["parallelism"])


# --- the pepper --------------------------------------------------------------------------------

def pepper_hsm():
    """The adapter of the token holding the pepper key: the signing HSM's, or a separate token of
    the same PKCS#11 module (``CHAVE_PIN_HSM_TOKEN_LABEL``, ``CHAVE_PIN_HSM_USER_PIN``)."""
    from chave.signing.hsm import hsm

    signing = hsm()  # also points SoftHSM2 at its configuration
    if (settings.CHAVE_PIN_HSM_TOKEN_LABEL == settings.CHAVE_SIGNING_TOKEN_LABEL
            and settings.CHAVE_PIN_HSM_USER_PIN == settings.CHAVE_SIGNING_USER_PIN):
        return signing
    return _separate_hsm(settings.CHAVE_SIGNING_PKCS11_MODULE, settings.CHAVE_PIN_HSM_TOKEN_LABEL,
                         settings.CHAVE_PIN_HSM_USER_PIN)


@locked_cache(maxsize=2, lock=MODULE_LOCK)  # one adapter, however many threads ask first
def _separate_hsm(module: str, token_label: str, user_pin: str):
    from chave.signing.hsm import Pkcs11Hsm

    return Pkcs11Hsm(module, token_label, user_pin)


def ensure_pepper_key() -> bool:
    """Generate the pepper key in the HSM unless it is there; True when it was made now. Outside
    production the SoftHSM2 token is made too. Several processes starting at once make one key
    (a file lock beside SoftHSM2's configuration serialises them)."""
    from chave.signing.devpki import init_softhsm_token

    label = settings.CHAVE_PIN_PEPPER_KEY_LABEL
    conf = settings.CHAVE_SIGNING_SOFTHSM2_CONF
    lock_path = Path(conf).parent / "pin-pepper.lock" if conf else None
    if lock_path:
        lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(lock_path, "a") if lock_path else contextlib.nullcontext() as lock:
        if lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
        if not settings.IS_PRODUCTION:
            init_softhsm_token(Path(settings.CHAVE_SIGNING_DIR), settings.CHAVE_PIN_HSM_TOKEN_LABEL,
                               settings.CHAVE_PIN_HSM_USER_PIN)
        adapter = pepper_hsm()
        if adapter.has_secret_key(label):
            return False
        adapter.generate_hmac_key(label)
        return True


def _hsm_peppered(pin: str) -> bytes:
    from chave.signing.hsm import HsmError

    data = _DOMAIN + pin.encode()
    try:
        return pepper_hsm().hmac_sha256(settings.CHAVE_PIN_PEPPER_KEY_LABEL, data)
    except (HsmError, pkcs11.PKCS11Error) as e:
        if settings.IS_PRODUCTION:
            raise PepperUnavailable(str(e)) from e
    # Development and tests make the token and key at first use.
    ensure_pepper_key()
    try:
        return pepper_hsm().hmac_sha256(settings.CHAVE_PIN_PEPPER_KEY_LABEL, data)
    except (HsmError, pkcs11.PKCS11Error) as e:
        raise PepperUnavailable(str(e)) from e


def _setting_peppered(pin: str) -> bytes:
    """The scheme before the HSM pepper (kept to verify, and then re-hash, older hashes)."""
    return hmac.new(settings.CHAVE_PIN_PEPPER.encode(), _DOMAIN + pin.encode(), hashlib.sha256).digest()


# --- bounded Argon2 ----------------------------------------------------------------------------

@locked_cache(maxsize=4)  # one semaphore, however many threads check their first PIN together
def _slots(count: int) -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(count)


M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)


@functools.cache
def share_argon2_memory() -> bool:
    """Let every thread of the process reuse the same Argon2 blocks (``memory_cost`` KiB each,
    19 MiB by default): one malloc arena for the whole process. Called at start-up
    (``IdentityConfig.ready``), before any server thread allocates.

    glibc gives threads arenas of their own, and after the first block is freed it raises its
    mmap threshold, so each later block comes from the arena of the thread that checks the PIN and
    stays there: every thread of a server process kept one block (8 threads held 150 MB more than
    one). With one arena a freed block is the next check's, whichever thread makes it, so a
    process holds about as many blocks as it runs checks at once. (Returning each block to the
    system instead, a fixed mmap threshold, costs a fresh mapping per check: page faults made a
    check take twice as long here.) Elsewhere than glibc nothing changes; False says so."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_ARENA_MAX, 1) == 1


def argon2_slots() -> int:
    """How many Argon2 computations this process runs at once: ``CHAVE_ARGON2_CONCURRENCY`` (which
    ``chave serve --processes N`` sets to each process's share of the cores), else its cores."""
    return settings.CHAVE_ARGON2_CONCURRENCY or len(os.sched_getaffinity(0)) or 1


def _bounded(work):
    with _slots(argon2_slots()):
        return work()


# --- the service ------------------------------------------------------------------------------

def hash_pin(pin: str) -> str:
    peppered = _hsm_peppered(pin)
    return HSM_SCHEME + _bounded(lambda: hasher().hash(peppered))


@functools.lru_cache(maxsize=4)
def _dummy_hash(time_cost: int, memory_cost: int, parallelism: int) -> str:
    return _hasher(time_cost, memory_cost, parallelism).hash(b"chave-dummy-pin")


def verify(stored_hash: str | None, pin: str) -> tuple[bool, bool]:
    """Return ``(correct, needs_rehash)``. Takes the same time whether or not a hash exists.

    With no stored hash (unknown citizen, no PIN yet) a dummy hash is verified so that the
    answer costs what a real one costs (the HSM's HMAC included): no user enumeration through
    timing. ``needs_rehash`` is True for a hash of the older scheme or of other Argon2
    parameters. Raises :class:`PepperUnavailable` when the HSM cannot compute the pepper.
    """
    h = hasher()
    pin = str(pin)
    if not stored_hash:
        p = settings.CHAVE_ARGON2
        dummy = _dummy_hash(p["time_cost"], p["memory_cost"], p["parallelism"])
        peppered = _hsm_peppered(pin)
        try:
            _bounded(lambda: h.verify(dummy, peppered))
        except (VerificationError, InvalidHashError):
            pass
        return False, False
    if stored_hash.startswith(HSM_SCHEME):
        argon2_hash, peppered, legacy = stored_hash[len(HSM_SCHEME):], _hsm_peppered(pin), False
    else:
        argon2_hash, peppered, legacy = stored_hash, _setting_peppered(pin), True
    try:
        _bounded(lambda: h.verify(argon2_hash, peppered))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, False
    return True, legacy or h.check_needs_rehash(argon2_hash)
