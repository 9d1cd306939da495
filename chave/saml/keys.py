"""The IdP's signing key and certificate: made at ``chave migrate``, rotatable, sealed at rest.

Keys are RSA 2048 with a self-signed certificate (SAML metadata carries the certificate itself;
portals trust it by its presence in Chave's signed metadata, as with autenticacao.gov). The
private key is sealed with ``CHAVE_KEY_SEAL_SECRET`` (:mod:`chave.sealing`); xmlsec1, which
pysaml2 drives, reads keys from files, so the unsealed key is written to a private temporary file
(mode 0600 in a 0700 directory) only while a message is signed (:func:`signing_files`).

Rotation (:func:`rotate`): the new key signs at once; the previous certificate stays in the
metadata for ``saml_key_grace_seconds`` so that a portal holding a response signed just before
still verifies it, and a portal that pinned the old metadata has time to fetch the new one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.db import IntegrityError, transaction

from chave import clock, policy, sealing
from chave.audit import services as audit
from chave.compiled import Compiled, first

from .models import IdpKey

_PURPOSE = "saml-signing-key"
_ATTEMPTS = 5


def _generate(now: dt.datetime) -> dict:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Chave SAML IdP"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Chave")])
    not_after = now + dt.timedelta(days=policy.get("saml_certificate_days"))
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(not_after)
                   .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                                key_encipherment=False, data_encipherment=False, key_agreement=False,
                                                key_cert_sign=False, crl_sign=False, encipher_only=False,
                                                decipher_only=False), critical=True)
                   .sign(key, hashes.SHA256()))
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return {
        "kid": hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest(),
        "certificate_pem": pem,
        "private_key_sealed": sealing.seal(private, secret=settings.CHAVE_KEY_SEAL_SECRET, purpose=_PURPOSE),
        "created_at": now,
        "not_after": not_after,
    }


_ACTIVE = Compiled(lambda: first(IdpKey.objects.filter(retired_at__isnull=True)))


def active_key() -> IdpKey:
    """The key that signs now; made on first use (safe when two first callers race: the
    database admits one unretired key, the loser takes the winner's)."""
    for _attempt in range(_ATTEMPTS):
        row = _ACTIVE.first()
        if row is not None:
            return row
        material = _generate(clock.now())
        try:
            with transaction.atomic():
                row = IdpKey.objects.create(**material)
            audit.record("saml.key_made", outcome="ok", kid=row.kid)
            return row
        except IntegrityError:
            continue
    raise RuntimeError("could not settle on an active SAML signing key")


def ensure_key_after_migrate(sender, **kwargs) -> None:
    """Receiver of ``post_migrate``: the IdP has a key once the database is migrated."""
    using = kwargs.get("using")
    if using not in (None, "default"):
        return
    active_key()


def rotate(*, by: str = "operator") -> IdpKey:
    """Make a new key that signs at once; the one it replaces is retired now and stays in the
    metadata for ``saml_key_grace_seconds``. Audited as ``saml.key_rotated`` (fingerprints only)."""
    for _attempt in range(_ATTEMPTS):
        material = _generate(clock.now())
        try:
            with transaction.atomic():
                retired = list(IdpKey.objects.select_for_update().filter(retired_at__isnull=True)
                               .values_list("kid", flat=True))
                IdpKey.objects.filter(retired_at__isnull=True).update(retired_at=material["created_at"])
                row = IdpKey.objects.create(**material)
                audit.record("saml.key_rotated", outcome="ok", by=by, retired=retired, made=row.kid)
                return row
        except IntegrityError:
            continue
    raise RuntimeError("could not rotate the SAML signing key")


def grace() -> dt.timedelta:
    """How long a retired certificate stays in the metadata."""
    return dt.timedelta(seconds=policy.get("saml_key_grace_seconds"))


def published_until(row: IdpKey) -> dt.datetime | None:
    return row.retired_at + grace() if row.retired_at else None


def published() -> list[IdpKey]:
    """The certificates in the metadata: the signing one first, then retired ones in their grace."""
    active = active_key()
    keep_since = clock.now() - grace()
    retired = IdpKey.objects.filter(retired_at__gt=keep_since).order_by("-created_at", "-id")
    return [active, *retired]


def all_keys() -> list[IdpKey]:
    return list(IdpKey.objects.order_by("-created_at", "-id"))


def unsealed_pem(sealed: str, secret: str) -> str:
    """A sealed private key in clear (PEM): for signing only, never stored or logged."""
    return sealing.unseal(sealed, secret=secret, purpose=_PURPOSE)


@contextlib.contextmanager
def signing_files(row: IdpKey):
    """(key file, certificate file) for xmlsec1, removed when the block ends."""
    private = unsealed_pem(row.private_key_sealed, settings.CHAVE_KEY_SEAL_SECRET)
    with tempfile.TemporaryDirectory(prefix="chave-saml-") as folder:  # mode 0700
        key_path, cert_path = os.path.join(folder, "key.pem"), os.path.join(folder, "cert.pem")
        descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(private)
        with open(cert_path, "w") as handle:
            handle.write(row.certificate_pem)
        yield key_path, cert_path


def certificate_base64(row: IdpKey) -> str:
    """The certificate as SAML metadata carries it (base64 DER, no PEM armour)."""
    return "".join(line for line in row.certificate_pem.strip().splitlines() if not line.startswith("-----"))
