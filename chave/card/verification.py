"""Checking a card's answer to a challenge: who signed, with which card, and may we trust it.

:func:`verify` takes the certificate and signature the agent returned and the exact bytes that
were to be signed, and either returns the :class:`CardIdentity` read from the certificate or
raises :class:`CardRefused` with a reason. In order:

1. the certificate parses (``malformed``) and the signature over the payload is its key's
   (``bad_signature``: tampered, or signed for another challenge or origin);
2. validity dates on the service clock (``not_yet_valid``, ``expired``);
3. a path to a configured trust anchor through the configured (or card-supplied) intermediates,
   with ``cryptography``'s X.509 path builder under a client-certificate policy
   (``untrusted``: a foreign or self-made CA); no anchor configured: ``not_configured``;
4. key usage digitalSignature (``key_usage``);
5. revocation by OCSP, else the CRL (``revoked``, or ``revocation_unknown`` when no method
   answers: we fail closed), see :mod:`chave.card.revocation`;
6. the NIC from the subject's serialNumber (``CHAVE_CARD_SERIAL_PATTERN``) and the names
   (``no_identity``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import verification as x509v
from cryptography.x509.oid import NameOID
from django.conf import settings

from . import revocation
from .pki import DevPki


# The Web PKI's rules for end-entity certificates, except that a card's authentication certificate
# names its holder in the subject and needs no subjectAltName.
_CARD_EE_POLICY = x509v.ExtensionPolicy.webpki_defaults_ee().may_be_present(
    x509.SubjectAlternativeName, x509v.Criticality.AGNOSTIC, None)


class CardRefused(Exception):
    """The card's answer is not accepted; ``reason`` is one of the names in the module docstring
    (or a challenge problem from :mod:`chave.card.services`)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CardIdentity:
    """Who the card says the citizen is, and which certificate said it (kept in the session)."""

    nic: str
    full_name: str
    given_name: str
    family_name: str
    certificate_serial: str  # hex
    fingerprint: str  # SHA-256 of the certificate's DER, hex
    not_after: str  # ISO 8601
    verified_at: str  # ISO 8601


def _load_pem_files(paths) -> list[x509.Certificate]:
    certificates = []
    for path in paths:
        path = Path(path)
        if path.exists():
            certificates.extend(x509.load_pem_x509_certificates(path.read_bytes()))
    return certificates


def trust_anchors() -> list[x509.Certificate]:
    """The configured roots; outside production without configuration, the test PKI's root."""
    if settings.CHAVE_CARD_TRUST_ANCHORS:
        return _load_pem_files(settings.CHAVE_CARD_TRUST_ANCHORS)
    if settings.IS_PRODUCTION:
        return []
    return _load_pem_files([DevPki().root_path])


def intermediates() -> list[x509.Certificate]:
    if settings.CHAVE_CARD_INTERMEDIATES or settings.CHAVE_CARD_TRUST_ANCHORS or settings.IS_PRODUCTION:
        return _load_pem_files(settings.CHAVE_CARD_INTERMEDIATES)
    return _load_pem_files([DevPki().sub_ca_path])


def check_signature(certificate: x509.Certificate, signature: bytes, payload: bytes) -> None:
    """Raise ``CardRefused("bad_signature")`` unless ``signature`` is the certificate key's over ``payload``."""
    key = certificate.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        else:
            raise CardRefused("bad_signature")
    except (InvalidSignature, ValueError) as exc:
        raise CardRefused("bad_signature") from exc


def _one(subject: x509.Name, oid) -> str:
    values = subject.get_attributes_for_oid(oid)
    return str(values[0].value).strip() if values else ""


def identity_of(certificate: x509.Certificate, *, at: dt.datetime) -> CardIdentity:
    match = re.match(settings.CHAVE_CARD_SERIAL_PATTERN, _one(certificate.subject, NameOID.SERIAL_NUMBER))
    full_name = _one(certificate.subject, NameOID.COMMON_NAME)
    if not match or not full_name:
        raise CardRefused("no_identity")
    return CardIdentity(
        nic=match.group("nic"),
        full_name=full_name,
        given_name=_one(certificate.subject, NameOID.GIVEN_NAME),
        family_name=_one(certificate.subject, NameOID.SURNAME),
        certificate_serial=format(certificate.serial_number, "x"),
        fingerprint=hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest(),
        not_after=certificate.not_valid_after_utc.isoformat(),
        verified_at=at.isoformat(),
    )


def verify(certificate_der: bytes, signature: bytes, payload: bytes, *, at: dt.datetime,
           chain: list[bytes] = ()) -> CardIdentity:
    """Check the card's answer (see the module docstring); raises :class:`CardRefused`.

    A certificate that parses but cannot be used (an unknown key type, a malformed extension)
    is ``malformed``, never an error page."""
    try:
        return _verify(certificate_der, signature, payload, at=at, chain=chain)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CardRefused("malformed") from exc


def _verify(certificate_der: bytes, signature: bytes, payload: bytes, *, at: dt.datetime,
            chain: list[bytes]) -> CardIdentity:
    try:
        certificate = x509.load_der_x509_certificate(certificate_der)
        supplied = [x509.load_der_x509_certificate(c) for c in chain]
    except ValueError as exc:
        raise CardRefused("malformed") from exc
    check_signature(certificate, signature, payload)
    if at < certificate.not_valid_before_utc:
        raise CardRefused("not_yet_valid")
    if at > certificate.not_valid_after_utc:
        raise CardRefused("expired")
    anchors = trust_anchors()
    if not anchors:
        raise CardRefused("not_configured")
    verifier = (
        x509v.PolicyBuilder().store(x509v.Store(anchors)).time(at)
        .extension_policies(ca_policy=x509v.ExtensionPolicy.webpki_defaults_ca(), ee_policy=_CARD_EE_POLICY)
        .build_client_verifier()
    )
    try:
        verified = verifier.verify(certificate, [*intermediates(), *supplied])
    except x509v.VerificationError as exc:
        raise CardRefused("untrusted") from exc
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is None or not usage.digital_signature:
        raise CardRefused("key_usage")
    issuer = verified.chain[1]
    status = revocation.check(certificate, issuer, at=at)
    if status.state == "revoked":
        raise CardRefused("revoked")
    if status.state != "good":
        raise CardRefused("revocation_unknown")
    return identity_of(certificate, at=at)
