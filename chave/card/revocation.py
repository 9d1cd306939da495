"""Is a card's certificate revoked? OCSP first, then the CRL (``card_revocation_methods``).

:func:`check` asks each method in the policy's order; the first that gives a trustworthy answer
decides (``good`` or ``revoked``). A method that cannot answer (no URL in the certificate, the
server unreachable, a malformed, stale or badly signed answer) is skipped; when none answers the
state is ``unknown`` and the caller refuses the card (fail closed).

- OCSP (RFC 6960): a request with a nonce, built with ``cryptography``'s ``OCSPRequestBuilder``,
  POSTed to the certificate's AIA OCSP URL; the answer must be signed by the issuer or by a
  responder certificate the issuer signed for OCSP signing, be current on the service clock,
  concern this serial and echo the nonce.
- CRL (RFC 5280): fetched from the certificate's CRL distribution point, signed by the issuer,
  current on the service clock.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from chave import policy

log = logging.getLogger(__name__)
MAX_RESPONSE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class RevocationStatus:
    state: str  # good | revoked | unknown
    source: str = ""  # ocsp | crl


class Unanswered(Exception):
    """This method could not give a trustworthy answer."""


def _fetch(url: str, *, data: bytes | None = None, content_type: str = "") -> bytes:
    if not url.startswith(("http://", "https://")):
        raise Unanswered(f"unsupported URL {url!r}")
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=policy.get("card_revocation_timeout_seconds")) as response:
            if response.status != 200:
                raise Unanswered(f"HTTP {response.status}")
            body = response.read(MAX_RESPONSE_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise Unanswered(f"{url}: {exc.__class__.__name__}") from exc
    if len(body) > MAX_RESPONSE_BYTES:
        raise Unanswered("answer too large")
    return body


def _signed_by(public_key, signature: bytes, data: bytes, algorithm) -> bool:
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(algorithm))
        else:
            return False
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _urls(certificate: x509.Certificate, method: str) -> list[str]:
    try:
        if method == "ocsp":
            aia = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
            return [d.access_location.value for d in aia
                    if d.access_method == AuthorityInformationAccessOID.OCSP
                    and isinstance(d.access_location, x509.UniformResourceIdentifier)]
        points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        return [name.value for point in points for name in (point.full_name or [])
                if isinstance(name, x509.UniformResourceIdentifier)]
    except x509.ExtensionNotFound:
        return []


def _current(this_update: dt.datetime, next_update: dt.datetime | None, at: dt.datetime) -> bool:
    return this_update <= at + dt.timedelta(minutes=5) and (next_update is None or at <= next_update)


def _responder_ok(response: ocsp.OCSPResponse, issuer: x509.Certificate, at: dt.datetime):
    """The public key that may sign this OCSP answer: the issuer's own, or a delegated responder's."""
    if response.responder_name == issuer.subject or response.responder_key_hash == \
            x509.SubjectKeyIdentifier.from_public_key(issuer.public_key()).digest:
        return issuer.public_key()
    for candidate in response.certificates:
        try:
            candidate.verify_directly_issued_by(issuer)
            usage = candidate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
            continue
        if ExtendedKeyUsageOID.OCSP_SIGNING not in usage:
            continue
        if not (candidate.not_valid_before_utc <= at <= candidate.not_valid_after_utc):
            continue
        return candidate.public_key()
    raise Unanswered("the OCSP answer is not signed by the issuer or its responder")


def check_ocsp(certificate: x509.Certificate, issuer: x509.Certificate, *, at: dt.datetime) -> str:
    urls = _urls(certificate, "ocsp")
    if not urls:
        raise Unanswered("no OCSP URL")
    nonce = os.urandom(16)
    request = (
        ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1())
        .add_extension(x509.OCSPNonce(nonce), critical=False).build()
    )
    body = _fetch(urls[0], data=request.public_bytes(serialization.Encoding.DER),
                  content_type="application/ocsp-request")
    try:
        response = ocsp.load_der_ocsp_response(body)
    except ValueError as exc:
        raise Unanswered("malformed OCSP answer") from exc
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise Unanswered(f"OCSP status {response.response_status.name}")
    key = _responder_ok(response, issuer, at)
    if not _signed_by(key, response.signature, response.tbs_response_bytes, response.signature_hash_algorithm):
        raise Unanswered("bad OCSP signature")
    try:
        echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        echoed = None
    if echoed != nonce:
        raise Unanswered("the OCSP answer does not echo our nonce")
    for single in response.responses:
        if single.serial_number != certificate.serial_number:
            continue
        if not _current(single.this_update_utc, single.next_update_utc, at):
            raise Unanswered("stale OCSP answer")
        if single.certificate_status == ocsp.OCSPCertStatus.GOOD:
            return "good"
        if single.certificate_status == ocsp.OCSPCertStatus.REVOKED:
            return "revoked"
        raise Unanswered("OCSP does not know the certificate")
    raise Unanswered("the OCSP answer is about another certificate")


def check_crl(certificate: x509.Certificate, issuer: x509.Certificate, *, at: dt.datetime) -> str:
    urls = _urls(certificate, "crl")
    if not urls:
        raise Unanswered("no CRL URL")
    body = _fetch(urls[0])
    try:
        crl = x509.load_pem_x509_crl(body) if body.lstrip().startswith(b"-----") else x509.load_der_x509_crl(body)
    except ValueError as exc:
        raise Unanswered("malformed CRL") from exc
    if crl.issuer != issuer.subject or not crl.is_signature_valid(issuer.public_key()):
        raise Unanswered("the CRL is not signed by the issuer")
    if not _current(crl.last_update_utc, crl.next_update_utc, at):
        raise Unanswered("stale CRL")
    return "revoked" if crl.get_revoked_certificate_by_serial_number(certificate.serial_number) else "good"


METHODS = {"ocsp": check_ocsp, "crl": check_crl}


def check(certificate: x509.Certificate, issuer: x509.Certificate, *, at: dt.datetime) -> RevocationStatus:
    for method in policy.get("card_revocation_methods"):
        try:
            return RevocationStatus(METHODS[method](certificate, issuer, at=at), method)
        except Unanswered as exc:
            log.warning("card revocation check by %s gave no answer: %s", method, exc)
    return RevocationStatus("unknown")
