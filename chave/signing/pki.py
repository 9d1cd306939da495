"""The signing PKI's services: citizens' certificates, the CRL, OCSP answers and time-stamps.

The CA, OCSP responder and TSA certificates are read from ``CHAVE_SIGNING_DIR`` (``root.crt``,
``ca.crt``, ``ocsp.crt``, ``tsa.crt``, ``root.crl``; the development set comes from
:mod:`chave.signing.devpki`); their private keys are in the HSM, under the labels
``CHAVE_SIGNING_CA_KEY_LABEL``, ``_OCSP_KEY_LABEL`` and ``_TSA_KEY_LABEL``, and sign there
(:mod:`chave.signing.ca_keys`). ``cryptography`` builds certificates, the CRL and OCSP responses;
the RFC 3161 tokens come from pyHanko's time-stamping support; QCStatements are encoded with
pyHanko's ASN.1 definitions (ETSI EN 319 412-5).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID, ObjectIdentifier
from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Max
from pyhanko.sign.ades.qualified_asn1 import QcStatements
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.general import as_signing_certificate, simple_cms_attribute
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

from chave import clock, policy

from . import ca_keys
from .devpki import _issued_by_sub_ca, pki_url
from .hsm import hsm
from .models import SigningCertificate

log = logging.getLogger("chave.signing")

QC_STATEMENTS_OID = ObjectIdentifier("1.3.6.1.5.5.7.1.3")
# ETSI EN 319 411-2: QCP-n-qscd, a qualified certificate for a natural person, key in a QSCD.
POLICY_QCP_N_QSCD = ObjectIdentifier("0.4.0.194112.1.2")
CRL_LIFETIME = dt.timedelta(hours=24)
CRL_REISSUE = dt.timedelta(hours=1)
OCSP_LIFETIME = dt.timedelta(hours=1)


class PkiNotReady(Exception):
    """The signing CA's material is missing (run ``chave signing dev-pki`` in development)."""


@dataclass(frozen=True)
class Material:
    root: x509.Certificate
    ca: x509.Certificate
    ocsp: x509.Certificate
    tsa: x509.Certificate
    root_crl_der: bytes

    @property
    def chain(self) -> list[x509.Certificate]:
        """What a citizen's certificate chains to, nearest first."""
        return [self.ca, self.root]


@functools.lru_cache(maxsize=4)
def _load(directory: str, stamp: float) -> Material:
    d = Path(directory)

    def cert(name):
        return x509.load_pem_x509_certificate((d / name).read_bytes())

    return Material(root=cert("root.crt"), ca=cert("ca.crt"), ocsp=cert("ocsp.crt"), tsa=cert("tsa.crt"),
                    root_crl_der=(d / "root.crl").read_bytes())


def material() -> Material:
    directory = Path(settings.CHAVE_SIGNING_DIR)
    try:
        stamp = (directory / "ca.crt").stat().st_mtime
        return _load(str(directory), stamp)
    except FileNotFoundError as e:
        raise PkiNotReady(f"the signing CA's material is missing in {directory}") from e


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def subject_serial(citizen) -> str:
    """The subject's serialNumber: ETSI EN 319 412-1 semantics identifier, format per document type."""
    template = settings.CHAVE_SIGNING_SUBJECT_SERIAL[citizen.doc_type]
    return template.format(number=citizen.doc_number, country=citizen.doc_country)


def _qc_statements() -> bytes:
    return QcStatements([
        {"statement_id": "qc_compliance"},
        {"statement_id": "qc_sscd"},
        {"statement_id": "qc_type", "statement_info": ["qct_esign"]},
    ]).dump()


def certificate_not_after(valid_until: dt.date) -> dt.datetime:
    """When a certificate issued now for a key valid until ``valid_until`` ends: at most
    ``signing_certificate_days`` from now, the key's last day, and the sub-CA's own end."""
    return min(
        clock.now() + dt.timedelta(days=policy.get("signing_certificate_days")),
        dt.datetime.combine(valid_until, dt.time(23, 59, 59), tzinfo=dt.timezone.utc),
        material().ca.not_valid_after_utc,
    )


def subject_name(citizen) -> x509.Name:
    """The identity a citizen's signing certificate certifies (a re-issue compares it)."""
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, citizen.doc_country if citizen.doc_type != "cc" else "PT"),
        x509.NameAttribute(NameOID.GIVEN_NAME, citizen.given_name),
        x509.NameAttribute(NameOID.SURNAME, citizen.family_name),
        x509.NameAttribute(NameOID.SERIAL_NUMBER, subject_serial(citizen)),
        x509.NameAttribute(NameOID.COMMON_NAME, citizen.full_name),
    ])


def issue_certificate(citizen, public_key_der: bytes, *, valid_until: dt.date) -> x509.Certificate:
    """A qualified-style signing certificate for ``citizen``'s HSM key (nonRepudiation only,
    QCStatements, policy QCP-n-qscd, AIA OCSP + caIssuers, CRL distribution point), at
    activation and for a re-issue for the same key."""
    m = material()
    public_key = serialization.load_der_public_key(public_key_der)
    now = clock.now()
    not_after = certificate_not_after(valid_until)
    subject = subject_name(citizen)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(m.ca.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=True, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(m.ca.public_key()), critical=False)
        .add_extension(x509.CertificatePolicies([x509.PolicyInformation(POLICY_QCP_N_QSCD, None)]), critical=False)
        .add_extension(x509.UnrecognizedExtension(QC_STATEMENTS_OID, _qc_statements()), critical=False)
    )
    return ca_keys.sign_certificate(_issued_by_sub_ca(builder), label=settings.CHAVE_SIGNING_CA_KEY_LABEL,
                                    issuer_key=m.ca.public_key(), algorithm=hashes.SHA384())


def _reason(name: str) -> x509.ReasonFlags:
    try:
        return x509.ReasonFlags(name)
    except ValueError:
        return x509.ReasonFlags.unspecified


def crl_der() -> bytes:
    """The sub-CA's current CRL (every revoked signing certificate, current or earlier), DER.

    Signing it costs an HSM signature and a read of every revocation, so it is kept in the cache
    under the revocations it lists (how many, and the latest): a revocation makes a new one at
    once, on every instance; otherwise one is reissued after ``CRL_REISSUE``, well before its
    ``nextUpdate``."""
    revoked = SigningCertificate.objects.filter(status=SigningCertificate.Status.REVOKED)
    state = revoked.aggregate(n=Count("id"), latest=Max("revoked_at"))
    key = "chave:signing:crl:{}:{}:{}".format(material().ca.serial_number, state["n"],
                                               state["latest"].timestamp() if state["latest"] else 0)
    try:
        cached = cache.get(key)
    except _cache_errors() as exc:
        # The cache is Redis and Redis is down: the CRL is signed for this request (an HSM
        # signature more), never refused; the next request tries the cache again.
        log.warning("signing CRL: the cache is unreachable (%s): signing a fresh CRL", exc.__class__.__name__)
        return _signed_crl()
    if cached is not None and clock.now().timestamp() - cached[0] < CRL_REISSUE.total_seconds():
        return cached[1]
    der = _signed_crl()
    try:
        cache.set(key, (clock.now().timestamp(), der), int(CRL_REISSUE.total_seconds()))
    except _cache_errors() as exc:
        log.warning("signing CRL: the cache is unreachable (%s): not kept", exc.__class__.__name__)
    return der


def _cache_errors() -> tuple[type[Exception], ...]:
    """What an unreachable Redis cache raises (Django's Redis backend lets redis-py's errors through)."""
    import redis

    return (redis.exceptions.RedisError, OSError)


def _signed_crl() -> bytes:
    m = material()
    now = clock.now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(m.ca.subject)
        .last_update(now - dt.timedelta(minutes=1))
        .next_update(now + CRL_LIFETIME)
        .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(m.ca.public_key()), critical=False)
    )
    for serial, at, reason in SigningCertificate.objects.filter(status=SigningCertificate.Status.REVOKED).values_list(
        "serial_number", "revoked_at", "revocation_reason"
    ):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(int(serial, 16)).revocation_date(at)
            .add_extension(x509.CRLReason(_reason(reason)), critical=False).build()
        )
    return ca_keys.sign_crl(builder, label=settings.CHAVE_SIGNING_CA_KEY_LABEL, issuer_key=m.ca.public_key(),
                            algorithm=hashes.SHA384()).public_bytes(serialization.Encoding.DER)


def ocsp_response_der(request_der: bytes) -> bytes:
    """Answer an OCSP request (RFC 6960) for a certificate of the sub-CA: good, revoked or unknown;
    signed by the delegated responder. A malformed request gets ``malformedRequest``."""
    try:
        request = ocsp.load_der_ocsp_request(request_der)
        serial = request.serial_number
    except (ValueError, TypeError):
        return ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST).public_bytes(
            serialization.Encoding.DER)
    m = material()
    now = clock.now()
    issuer_key_hash = _key_hash(m.ca, request.hash_algorithm)
    ours = request.issuer_key_hash == issuer_key_hash
    # Every certificate the sub-CA issued is in the history: an earlier one of a re-issued key too.
    row = SigningCertificate.objects.filter(serial_number=f"{serial:x}").first() if ours else None
    if row is None:
        # Unknown serial or another issuer: "unknown" (RFC 6960 §2.2), answered about the request's certificate id.
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=request.issuer_name_hash, issuer_key_hash=request.issuer_key_hash,
            serial_number=serial, algorithm=request.hash_algorithm, cert_status=ocsp.OCSPCertStatus.UNKNOWN,
            this_update=now, next_update=now + OCSP_LIFETIME, revocation_time=None, revocation_reason=None,
        )
    else:
        cert = x509.load_der_x509_certificate(bytes(row.certificate_der))
        revoked = row.status == SigningCertificate.Status.REVOKED
        builder = ocsp.OCSPResponseBuilder().add_response(
            cert=cert, issuer=m.ca, algorithm=request.hash_algorithm,
            cert_status=ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD,
            this_update=now, next_update=now + OCSP_LIFETIME,
            revocation_time=row.revoked_at if revoked else None,
            revocation_reason=_reason(row.revocation_reason) if revoked else None,
        )
    for extension in request.extensions:
        if isinstance(extension.value, x509.OCSPNonce):
            builder = builder.add_extension(extension.value, critical=False)
    return ca_keys.sign_ocsp_response(builder, label=settings.CHAVE_SIGNING_OCSP_KEY_LABEL, responder=m.ocsp,
                                      algorithm=hashes.SHA256())


def _key_hash(cert: x509.Certificate, algorithm) -> bytes | None:
    """The hash of the issuer's public key bits, as OCSP CertIDs carry it (SHA-1 or SHA-256)."""
    spki = asn1_x509.Certificate.load(der(cert)).public_key
    return {"sha1": spki.sha1, "sha256": spki.sha256}.get(algorithm.name)


class TimeStampResponse(core.Sequence):
    """RFC 3161's TimeStampResp, whose token is OPTIONAL (absent from a rejection); asn1crypto's
    ``tsp.TimeStampResp`` requires it."""

    _fields = [("status", tsp.PKIStatusInfo), ("time_stamp_token", tsp.ContentInfo, {"optional": True})]


class ChaveTimeStamper(DummyTimeStamper):
    """Chave's own TSA, in process: pyHanko's stamper with the TSA's certificate, signing with the
    TSA's ECDSA key in the HSM (pyHanko's own signs with an RSA key it holds), at the
    service clock's time, under the TSA policy of ``CHAVE_SIGNING_TSA_POLICY`` (ETSI EN 319 421
    baseline by default) with an accuracy of one second. Following RFC 3161 it refuses (status
    "rejection") an imprint of a hash algorithm outside ``CHAVE_SIGNING_TSA_DIGESTS`` or of the
    wrong length (``badAlg`` / ``badDataFormat``) and a request for another policy
    (``unacceptedPolicy``), and embeds its certificates only when the request asks (``certReq``)."""

    def __init__(self):
        m = material()
        super().__init__(
            tsa_cert=asn1_x509.Certificate.load(der(m.tsa)),
            tsa_key=None,  # in the HSM: see _sign_tst_info
            certs_to_embed=[asn1_x509.Certificate.load(der(c)) for c in m.chain],
            fixed_dt=clock.now(),
        )
        self._embedded = tuple(der(c) for c in m.chain)
        self._cert_req = True

    def _refusal(self, failure: str, text: str) -> TimeStampResponse:
        return TimeStampResponse({"status": tsp.PKIStatusInfo({
            "status": "rejection", "status_string": [text], "fail_info": tsp.PKIFailureInfo({failure})})})

    def request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp | TimeStampResponse:
        imprint = req["message_imprint"]
        algorithm = imprint["hash_algorithm"]["algorithm"].native
        if algorithm not in settings.CHAVE_SIGNING_TSA_DIGESTS:
            return self._refusal("bad_alg", f"hash algorithm {algorithm} is not accepted")
        if len(imprint["hashed_message"].native) != getattr(hashes, algorithm.upper()).digest_size:
            return self._refusal("bad_data_format", "the imprint's length does not match its algorithm")
        asked = req["req_policy"].native
        if asked is not None and asked != settings.CHAVE_SIGNING_TSA_POLICY:
            return self._refusal("unaccepted_policy", f"policy {asked} is not served here")
        self._cert_req = bool(req["cert_req"].native)
        return super().request_tsa_response(req)

    def _build_tst_info(self, message_imprint, dt_, req) -> tsp.TSTInfo:
        info = super()._build_tst_info(message_imprint, dt_, req)
        info["policy"] = tsp.ObjectIdentifier(settings.CHAVE_SIGNING_TSA_POLICY)
        info["accuracy"] = tsp.Accuracy({"seconds": 1})
        return info

    def _sign_tst_info(self, tst_info_data: bytes, md_algorithm: str, dt_) -> tuple[bytes, cms.CMSAttributes]:
        """pyHanko's signed attributes, signed by the TSA's key in the HSM (ECDSA)."""
        algorithm = getattr(hashes, md_algorithm.upper())()
        digest = hashes.Hash(algorithm)
        digest.update(tst_info_data)
        signed_attrs = cms.CMSAttributes([
            simple_cms_attribute("content_type", "tst_info"),
            simple_cms_attribute("signing_time", cms.Time({"utc_time": core.UTCTime(dt_)})),
            cms.CMSAttribute.load(_tsa_encoded(self.tsa_cert.dump(), self._embedded)[0]),
            simple_cms_attribute("message_digest", digest.finalize()),
        ])
        to_sign = hashes.Hash(algorithm)
        to_sign.update(signed_attrs.dump())
        signature = hsm().sign_digests(settings.CHAVE_SIGNING_TSA_KEY_LABEL, [to_sign.finalize()])[0]
        return signature, signed_attrs

    def _build_signed_data(self, tst_info_data, md_algorithm, signature, signed_attrs) -> dict:
        signed_data = super()._build_signed_data(tst_info_data, md_algorithm, signature, signed_attrs)
        signed_data["signer_infos"][0]["signature_algorithm"] = algos.SignedDigestAlgorithm(
            {"algorithm": f"{md_algorithm}_ecdsa"})
        if self._cert_req:
            signed_data["certificates"] = cms.CertificateSet.load(_tsa_encoded(self.tsa_cert.dump(), self._embedded)[1])
        else:
            del signed_data["certificates"]
        return signed_data


@functools.lru_cache(maxsize=4)
def _tsa_encoded(tsa_der: bytes, chain: tuple[bytes, ...]) -> tuple[bytes, bytes]:
    """DER of the TSA's signing-certificate attribute and of the certificates its tokens embed
    (the TSA's and the chain's): the same in every token, so encoded once. asn1crypto takes
    milliseconds to encode structures built of certificates' names each time, more than the rest
    of a token (issue 17, goal 6)."""
    tsa = asn1_x509.Certificate.load(tsa_der)
    attribute = simple_cms_attribute("signing_certificate", as_signing_certificate(tsa))
    certificates = cms.CertificateSet([asn1_x509.Certificate.load(c) for c in {*chain, tsa_der}])
    return attribute.dump(), certificates.dump()


def timestamp_response_der(request_der: bytes) -> bytes:
    """Answer an RFC 3161 time-stamp request; raises ``ValueError`` for one that does not parse."""
    request = tsp.TimeStampReq.load(request_der)
    request.native  # parse it all now: a malformed request fails here, not half-way
    return ChaveTimeStamper().request_tsa_response(request).dump()


def timestamper():
    """The time-stamper signatures use: the external TSA when ``CHAVE_SIGNING_TSA_URL`` names one,
    else Chave's own (in process: the same tokens its HTTP endpoint gives)."""
    if settings.CHAVE_SIGNING_TSA_URL:
        return HTTPTimeStamper(settings.CHAVE_SIGNING_TSA_URL, timeout=settings.CHAVE_HTTP_TIMEOUT)
    return ChaveTimeStamper()


__all__ = ["pki_url", "material", "issue_certificate", "certificate_not_after", "subject_name", "crl_der", "ocsp_response_der", "timestamp_response_der",
           "timestamper", "subject_serial", "PkiNotReady"]
