"""The SCMD encryption certificate and the decryption of the fields integrators encrypt under it.

The citizen's mobile number (``UserId``, ``citizenId``), the signing PIN and the code reach the
service encrypted with RSA (RSAES-PKCS1-v1_5, RFC 8017 §7.2, as the Portuguese service's clients
encrypt) under the public key of the certificate Chave publishes at ``/scmd/encryption.crt``,
each as the base64 of the ciphertext. The private key is in the signing HSM
(``CHAVE_SCMD_ENCRYPTION_KEY_LABEL``) and decrypts there: the field's clear text exists only in
the request's memory, never in a log or the database.
"""

from __future__ import annotations

import base64
import binascii
import functools
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.conf import settings

from chave.signing.devpki import ENCRYPTION_CERT
from chave.signing.hsm import HsmError, hsm

# Enough for the base64 of a 4096-bit RSA ciphertext, with room for line breaks.
MAX_FIELD_LENGTH = 1024


class Undecryptable(ValueError):
    """The field is not the base64 of a ciphertext under Chave's encryption certificate."""


def certificate_path() -> Path:
    return Path(settings.CHAVE_SCMD_ENCRYPTION_CERT or Path(settings.CHAVE_SIGNING_DIR) / ENCRYPTION_CERT)


@functools.lru_cache(maxsize=4)
def _load(path: str, stamp: float) -> x509.Certificate:
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


def certificate() -> x509.Certificate:
    path = certificate_path()
    return _load(str(path), path.stat().st_mtime)


def certificate_pem() -> bytes:
    return certificate().public_bytes(serialization.Encoding.PEM)


def decrypt(value: str | None) -> str:
    """The clear text of an encrypted field (UTF-8); :class:`Undecryptable` for anything else."""
    if value is None or not value.strip() or len(value) > MAX_FIELD_LENGTH:
        raise Undecryptable("empty or too long")
    try:
        ciphertext = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise Undecryptable("not base64") from None
    try:
        clear = hsm().decrypt_pkcs1(settings.CHAVE_SCMD_ENCRYPTION_KEY_LABEL, ciphertext)
        return clear.decode("utf-8")
    except (HsmError, UnicodeDecodeError):
        raise Undecryptable("does not decrypt") from None
